"""The console proxy on the main port: the noVNC page and two websocket proxies.

- ``GET /console/novnc/{file}``: noVNC's files (Debian's ``novnc`` package,
  ``[console] novnc_dir``), public: the page itself holds no secret.
- ``GET /console/websockify?token=T``: a websocket (binary frames, the
  ``binary`` subprotocol noVNC and websockify speak) joined to the guest's
  VNC server over TCP.
- ``GET /console/serial?token=T``: the same for the guest's serial console
  (text frames from the client are sent as UTF-8).

No Keystone token: the console token is the credential. It is used up as
the websocket opens (``tokens.consume``); a token whose instance is deleted
or on another host is refused (and its instance's tokens forgotten); before
joining, the guest's agent is asked again where the console listens (Nova's validate_console_port), so
a token for a deleted guest never reaches whichever guest took its port. A
refused upgrade is a bare HTTP error with no body and the connection closed,
which both browsers and websockify's clients (Tempest) read as a refusal.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import agent_hub
from cloudd.services.console import tokens

log = logging.getLogger("cloudd.console")

NOVNC_PREFIX = "/console/novnc"
KINDS = {"vnc": ("novnc",), "serial": ("serial",)}
SESSIONS = web.AppKey("console_sessions", set)
CONNECT_TIMEOUT = 10.0
CHUNK = 64 * 1024


def _cloud(request: web.Request):
    return request.config_dict["cloud"]


# -- the noVNC files -------------------------------------------------------------------

async def novnc_file(request: web.Request) -> web.StreamResponse:
    base = Path(_cloud(request).config.console.novnc_dir)
    rel = request.match_info.get("path", "") or "vnc_lite.html"
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." or "\\" in p or "\x00" in p for p in parts):
        raise web.HTTPNotFound()
    path = base.joinpath(*parts)
    if not path.is_file():
        if not base.is_dir():
            log.warning("noVNC is not installed", extra={"fields": {"novnc_dir": str(base)}})
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


novnc_file.public = True  # type: ignore[attr-defined]


# -- the websocket proxies ---------------------------------------------------------------

def _refuse(status: int) -> web.Response:
    resp = web.Response(status=status)
    resp.force_close()
    return resp


def _origin_ok(request: web.Request) -> bool:
    """Nova's check: a browser's Origin must be this proxy's own host (or one
    [console] allowed_origins names); clients that send none pass."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    cfg = _cloud(request).config
    allowed = {request.host.lower(), urlsplit(cfg.public_url).netloc.lower()}
    allowed |= {o.strip().lower() for o in cfg.console.allowed_origins.split(",") if o.strip()}
    return parts.netloc.lower() in allowed or parts.hostname.lower() in allowed


async def _instance_on(conn, row) -> bool:
    """The token's instance still exists on the host the token was issued for."""
    i = t.instance
    found = (await conn.execute(select(i.c.host).where(
        i.c.uuid == row.instance_uuid, i.c.deleted.is_(False)))).first()
    return found is not None and found.host == row.compute_host


async def _still_there(cloud, row, kind: str) -> bool:
    """The agent still has this guest's console at the token's host and port."""
    try:
        info = await cloud.compute.hub.call(row.compute_host, "console_info",
                                            {"uuid": row.instance_uuid, "kind": kind},
                                            timeout=15)
    except (agent_hub.AgentUnavailable, agent_hub.AgentCallFailed):
        return False
    info = info or {}
    return str(info.get("host")) == row.host and info.get("port") == row.port


async def _pump_to_ws(reader: asyncio.StreamReader, ws: web.WebSocketResponse) -> None:
    while chunk := await reader.read(CHUNK):
        await ws.send_bytes(chunk)


async def _pump_to_tcp(ws: web.WebSocketResponse, writer: asyncio.StreamWriter) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            writer.write(msg.data)
        elif msg.type == WSMsgType.TEXT:
            writer.write(msg.data.encode("utf-8"))
        else:
            break
        await writer.drain()


async def _proxy(request: web.Request, kind: str) -> web.StreamResponse:
    cloud = _cloud(request)
    if not _origin_ok(request):
        log.warning("console websocket refused: origin",
                    extra={"fields": {"origin": request.headers.get("Origin")}})
        return _refuse(403)
    token = request.query.get("token", "")
    async with cloud.db.write() as conn:
        row = await tokens.consume(conn, token, KINDS[kind])
        if row is not None and not await _instance_on(conn, row):
            await tokens.delete_for_instance(conn, row.instance_uuid)   # deleted or moved
            row = None
    if row is None:
        log.info("console websocket refused: invalid token", extra={"fields": {"kind": kind}})
        return _refuse(401)
    fields = {"instance": row.instance_uuid, "kind": kind}
    if not await _still_there(cloud, row, kind):
        log.info("console websocket refused: console moved", extra={"fields": fields})
        return _refuse(404)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(row.host, row.port)
    except (OSError, TimeoutError) as exc:
        log.warning("console unreachable", extra={"fields": {**fields, "error": str(exc)}})
        return _refuse(502)
    ws = web.WebSocketResponse(protocols=("binary",), max_msg_size=4 * 1024 * 1024,
                               heartbeat=None)
    sessions = request.app[SESSIONS]
    try:
        await ws.prepare(request)
        sessions.add(ws)
        log.info("console session opened", extra={"fields": fields})
        tasks = [asyncio.create_task(_pump_to_ws(reader, ws)),
                 asyncio.create_task(_pump_to_tcp(ws, writer))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        sessions.discard(ws)
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        if not ws.closed and ws.prepared:
            await ws.close()
        log.info("console session closed", extra={"fields": fields})
    return ws


async def websockify(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "vnc")


async def serial(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "serial")


websockify.public = True  # type: ignore[attr-defined]
serial.public = True  # type: ignore[attr-defined]


async def _close_sessions(app: web.Application) -> None:
    """Shutting down: end every console session (clients see "going away")."""
    for ws in list(app[SESSIONS]):
        await ws.close(code=1001, message=b"server shutting down")


def mount(app: web.Application) -> None:
    app[SESSIONS] = set()
    app.on_shutdown.append(_close_sessions)
    app.router.add_get(NOVNC_PREFIX + "/{path:.*}", novnc_file)
    app.router.add_get("/console/websockify", websockify)
    app.router.add_get("/console/serial", serial)
