"""The agent's metadata proxy: guests' 169.254.169.254 requests to the controller.

One HTTP listener per plugged network, on that network's host address (the
address the host puts on the bridge) and ``[host_network] metadata_port``.
The host plumbing DNATs ``iifname BRIDGE ip daddr 169.254.169.254 tcp dport
80`` to it and calls ``ensure(network_id, host_address, device=BRIDGE)`` when
it plugs the network and ``remove(network_id)`` when the last port goes. With
``device`` the listener is bound to the bridge (SO_BINDTODEVICE): a guest of
another network cannot reach it through the host, so the network a request
names is always the one it came from.

A guest's GET is forwarded to ``CONTROLLER/agent/v1/metadata/PATH`` with the
agent's host credential, ``X-Cloudd-Network-Id`` (the listener's network) and
``X-Forwarded-For`` (the guest's source address, which the DNAT keeps); the
controller answers only for the instance with that address on that network
on this host (``cloudd/services/metadata/endpoint.py``). The path is
normalised first, so a guest cannot walk out of /metadata with ``..``.
Answers other than 200 and 404 (the controller unreachable, a refused
credential) reach the guest as Neutron's metadata agent gives them: a 500.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import posixpath
import socket

import aiohttp
from aiohttp import web
from yarl import URL

from cloudd.services.compute import protocol

log = logging.getLogger("cloudd.agent.metadata")

NETWORK_HEADER = "X-Cloudd-Network-Id"
FORWARDED_HEADER = "X-Forwarded-For"
UNKNOWN = b"An unknown error has occurred. Please try your request again."
RELAYED = (200, 404)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
NETWORK_ID = web.AppKey("network_id", str)


def _fields(**kw) -> dict:
    return {"fields": kw}


def _address(host_address: str) -> str:
    """``10.253.0.1/24`` or ``10.253.0.1`` -> ``10.253.0.1``."""
    return str(ipaddress.ip_interface(host_address.strip()).ip)


def _socket(address: str, port: int, device: str | None = None) -> socket.socket:
    """A listening socket on address:port that may bind before the address is up
    (IP_FREEBIND), so plugging order does not matter; with ``device``, it takes
    only connections that arrive through that interface (SO_BINDTODEVICE)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        try:
            sock.setsockopt(socket.SOL_IP if family == socket.AF_INET else socket.SOL_IPV6,
                            IP_FREEBIND, 1)
        except OSError:
            pass
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Listener:
    def __init__(self, where: tuple[str, str | None], runner: web.AppRunner) -> None:
        self.where = where                   # (address, device)
        self.runner = runner


class MetadataProxy:
    """``ensure``/``remove`` listeners; ``close()`` stops them all."""

    def __init__(self, controller: str, host: str, secret: str, *, port: int,
                 timeout: float = 15.0) -> None:
        self.base = URL(controller.rstrip("/") + protocol.PATH + "/metadata")
        self.host = host
        self.secret = secret
        self.port = port
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.listeners: dict[str, _Listener] = {}
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    # --- listeners ----------------------------------------------------------------------

    async def ensure(self, network_id: str, host_address: str,
                     device: str | None = None) -> None:
        """Listen for ``network_id``'s guests on host_address:port (idempotent;
        a changed address or device moves the listener). ``device`` (the
        network's bridge) restricts the listener to requests that come in
        through it, so no guest of another network can reach it directly."""
        address = _address(host_address)
        where = (address, device or None)
        async with self._lock:
            current = self.listeners.get(network_id)
            if current is not None:
                if current.where == where:
                    return
                await self._stop(network_id)
            app = web.Application()
            app[NETWORK_ID] = network_id
            app.router.add_route("*", "/{path:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            try:
                site = web.SockSite(runner, _socket(address, self.port, device))
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            self.listeners[network_id] = _Listener(where, runner)
            log.info("metadata proxy listening", extra=_fields(
                network_id=network_id, address=address, port=self.port, device=device))

    async def remove(self, network_id: str) -> None:
        """Stop ``network_id``'s listener (nothing if there is none)."""
        async with self._lock:
            await self._stop(network_id)

    async def _stop(self, network_id: str) -> None:
        listener = self.listeners.pop(network_id, None)
        if listener is not None:
            await listener.runner.cleanup()
            log.info("metadata proxy stopped", extra=_fields(network_id=network_id))

    async def close(self) -> None:
        async with self._lock:
            for network_id in list(self.listeners):
                await self._stop(network_id)
            if self._session is not None:
                await self._session.close()
                self._session = None

    # --- forwarding ---------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"},
                                text="The method is not allowed for the requested URL.")
        network_id = request.app[NETWORK_ID]
        guest = request.remote or ""
        path = posixpath.normpath("/" + request.path.lstrip("/"))
        url = self.base.with_path(self.base.path + ("" if path == "/" else path))
        headers = {"Authorization": f"Bearer {self.host}:{self.secret}",
                   NETWORK_HEADER: network_id, FORWARDED_HEADER: guest}
        try:
            async with self._client().get(url, headers=headers,
                                          allow_redirects=False) as resp:
                body = await resp.read()
                status, media = resp.status, resp.headers.get("Content-Type")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.warning("metadata request not forwarded", extra=_fields(
                network_id=network_id, guest=guest, error=str(e) or type(e).__name__))
            return web.Response(status=500, body=UNKNOWN, content_type="text/plain")
        if status not in RELAYED:
            log.warning("the controller refused a metadata request", extra=_fields(
                network_id=network_id, guest=guest, status=status))
            return web.Response(status=500, body=UNKNOWN, content_type="text/plain")
        out = web.Response(status=status, body=body)
        if media:
            out.headers["Content-Type"] = media
        return out
