"""Remote consoles in-process, on SQLite and PostgreSQL: Nova's bodies and
errors per microversion (remote-consoles, the legacy actions,
os-console-auth-tokens), and the console proxy's one-time, expiring tokens
against a stand-in VNC server."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.compute.agent_hub import AgentUnavailable
from cloudd.web.app import build_root
from tests.compute.conftest import call
from tests.compute.test_server_actions_api import act, active
from tests.compute.test_servers_api import ALICE, BOB, hold_conductor, rows

pytestmark = pytest.mark.asyncio

RFB_HELLO = b"RFB 003.008\n"


@pytest_asyncio.fixture
async def api(api):
    return hold_conductor(api)


@pytest_asyncio.fixture
async def vnc():
    """A stand-in for a guest's VNC server: sends the RFB greeting, then echoes."""
    seen: list[bytes] = []

    async def serve(reader, writer):
        writer.write(RFB_HELLO)
        await writer.drain()
        while data := await reader.read(4096):
            seen.append(data)
            writer.write(b"echo:" + data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    server.port = server.sockets[0].getsockname()[1]
    server.seen = seen
    yield server
    server.close()
    await server.wait_closed()


def agent_answers(api, port, calls=None):
    """The hub's console_info call answered as an agent whose guest listens on port."""
    async def fake_call(host, op, args, timeout):
        if calls is not None:
            calls.append((host, op, args))
        assert op == "console_info"
        return {"host": "127.0.0.1", "port": port}
    api.cloud.compute.hub.call = fake_call


def token_of(url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    if "path" in query:
        query = parse_qs(urlsplit(unquote(query["path"][0])).query)
    return query["token"][0]


async def remote(api, uuid, protocol, type_, status, version="2.6", token=ALICE):
    return await call(api, "POST", f"/v2.1/servers/{uuid}/remote-consoles",
                      {"remote_console": {"protocol": protocol, "type": type_}},
                      token=token, version=version, status=status)


async def test_remote_console_bodies(api, vnc):
    uuid = await active(api)
    calls = []
    agent_answers(api, vnc.port, calls)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    console = data["remote_console"]
    assert set(console) == {"protocol", "type", "url"}
    assert console["protocol"] == "vnc" and console["type"] == "novnc"
    base = api.cloud.config.public_url
    assert console["url"].startswith(f"{base}/console/novnc/vnc_lite.html?path=console%2F"
                                     "websockify%3Ftoken%3D")
    assert calls == [("node1", "console_info", {"uuid": uuid, "kind": "vnc"})]

    _, data = await remote(api, uuid, "serial", "serial", 200, version="2.8")
    url = data["remote_console"]["url"]
    assert data["remote_console"]["protocol"] == "serial"
    assert url.startswith(base.replace("http://", "ws://") + "/console/serial?token=")

    # Each URL has its own token; only hashes are stored, with what to connect to.
    stored = {r.token_hash: r for r in await rows(api, t.console_auth_token,
                                                  instance_uuid=uuid)}
    assert len(stored) == 2
    for u, kind in ((console["url"], "novnc"), (url, "serial")):
        row = stored[hashlib.sha256(token_of(u).encode()).hexdigest()]
        assert (row.console_type, row.host, row.port, row.compute_host) == \
            (kind, "127.0.0.1", vnc.port, "node1")
        assert (row.expires_at - row.created_at).total_seconds() == 600


async def test_legacy_actions(api, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await act(api, uuid, {"os-getVNCConsole": {"type": "novnc"}}, 200)
    assert set(data) == {"console"} and set(data["console"]) == {"type", "url"}
    assert data["console"]["type"] == "novnc" and "/console/novnc/" in data["console"]["url"]
    _, data = await act(api, uuid, {"os-getSerialConsole": {"type": "serial"}}, 200,
                        version="2.5")
    assert data["console"]["type"] == "serial"
    assert "/console/serial?token=" in data["console"]["url"]
    # Gone from 2.6: the remote-consoles resource replaces them.
    await act(api, uuid, {"os-getVNCConsole": {"type": "novnc"}}, 404, version="2.6")
    # ...which does not exist before 2.6.
    await remote(api, uuid, "vnc", "novnc", 404, version="2.5")
    # Nova's schema errors.
    _, err = await act(api, uuid, {"os-getVNCConsole": {}}, 400)
    assert "'type' is a required property" in err["badRequest"]["message"]
    _, err = await act(api, uuid, {"os-getSerialConsole": {"type": "novnc"}}, 400)
    assert err["badRequest"]["message"].startswith("Invalid input for field/attribute type.")
    _, err = await act(api, uuid, {"os-getVNCConsole": {"type": "xvpvnc"}}, 400)
    assert err["badRequest"]["message"] == "Invalid console type xvpvnc"
    _, err = await act(api, uuid, {"os-getSPICEConsole": {"type": "spice-html5"}}, 400)
    assert err["badRequest"]["message"] == "Unavailable console type spice-html5."


async def test_remote_console_errors(api, vnc):
    uuid = await active(api)
    calls = []
    agent_answers(api, vnc.port, calls)
    # Schema: an unknown protocol, mks before 2.8, a missing type.
    _, err = await remote(api, uuid, "telnet", "novnc", 400)
    assert err["badRequest"]["message"].startswith("Invalid input for field/attribute "
                                                   "protocol.")
    await remote(api, uuid, "mks", "webmks", 400, version="2.6")
    _, err = await call(api, "POST", f"/v2.1/servers/{uuid}/remote-consoles",
                        {"remote_console": {"protocol": "vnc"}}, token=ALICE,
                        version="2.6", status=400)
    # Types cloudd does not offer, and a type that does not fit the protocol.
    for protocol, type_, message in (
            ("rdp", "rdp-html5", "Unavailable console type rdp."),
            ("spice", "spice-html5", "Unavailable console type spice-html5."),
            ("mks", "webmks", "Unavailable console type webmks."),
            ("vnc", "xvpvnc", "Invalid console type xvpvnc"),
            ("vnc", "serial", "Invalid console type serial"),
            ("serial", "novnc", "Invalid console type novnc")):
        _, err = await remote(api, uuid, protocol, type_, 400, version="2.8")
        assert err["badRequest"]["message"] == message
    assert calls == [] and await rows(api, t.console_auth_token) == []
    # Another project's server is not found; a missing one neither.
    await remote(api, uuid, "vnc", "novnc", 404, token=BOB)
    _, err = await remote(api, "00000000-0000-0000-0000-000000000000", "vnc", "novnc", 404)
    assert "could not be found" in err["itemNotFound"]["message"]


async def test_console_state_errors(api, vnc):
    agent_answers(api, vnc.port)
    uuid = await active(api)
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(vm_state="stopped", power_state=4))
    _, err = await remote(api, uuid, "vnc", "novnc", 409)
    assert err["conflictingRequest"]["message"] == \
        f"Cannot 'get_vnc_console' instance {uuid} while it is in vm_state stopped"
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(vm_state="active", task_state="deleting"))
    _, err = await remote(api, uuid, "serial", "serial", 409)
    assert err["conflictingRequest"]["message"] == \
        f"Cannot 'get_serial_console' instance {uuid} while it is in task_state deleting"
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(task_state=None, host=None))
    _, err = await remote(api, uuid, "vnc", "novnc", 409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is not ready"
    assert await rows(api, t.console_auth_token) == []


async def test_agent_without_console(api):
    uuid = await active(api)

    async def nothing(host, op, args, timeout):
        return {}                        # the fake driver: no console to offer
    api.cloud.compute.hub.call = nothing
    _, err = await remote(api, uuid, "vnc", "novnc", 400)
    assert err["badRequest"]["message"] == "Unavailable console type vnc."
    _, err = await remote(api, uuid, "serial", "serial", 400)
    assert err["badRequest"]["message"] == "Unavailable console type serial."

    async def gone(host, op, args, timeout):
        raise AgentUnavailable(host)
    api.cloud.compute.hub.call = gone
    _, err = await remote(api, uuid, "vnc", "novnc", 409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is not ready"
    assert await rows(api, t.console_auth_token) == []


async def test_consoles_disabled(make_api, vnc):
    api = hold_conductor(await make_api({"console": {"vnc_enabled": False,
                                                     "serial_enabled": False}}))
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, err = await remote(api, uuid, "vnc", "novnc", 400)
    assert err["badRequest"]["message"] == "Unavailable console type novnc."
    _, err = await act(api, uuid, {"os-getSerialConsole": {"type": "serial"}}, 400)
    assert err["badRequest"]["message"] == "Unavailable console type serial."


async def test_console_auth_tokens(api, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    token = token_of(data["remote_console"]["url"])
    path = f"/v2.1/os-console-auth-tokens/{token}"
    _, data = await call(api, "GET", path, version="2.31", status=200)
    assert data == {"console": {"instance_uuid": uuid, "host": "127.0.0.1",
                                "port": vnc.port, "internal_access_path": None}}
    _, err = await call(api, "GET", path, version="2.30", status=400)
    assert err["badRequest"]["message"].startswith("The server could not comply")
    _, err = await call(api, "GET", path + "x", version="2.31", status=404)
    assert err["itemNotFound"]["message"] == "Token not found"
    await call(api, "GET", path, token=ALICE, version="2.31", status=403)
    # Looking at a token does not use it up; an expired one is not found.
    _, data = await call(api, "GET", path, version="2.31", status=200)
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.console_auth_token).values(
            expires_at=t.console_auth_token.c.created_at))
    await call(api, "GET", path, version="2.31", status=404)


# -- the proxy -----------------------------------------------------------------------

@pytest_asyncio.fixture
async def root(api):
    client = TestClient(TestServer(build_root(api.cloud)))
    await client.start_server()
    yield client
    await client.close()


def ws_path(url: str) -> str:
    """The path noVNC's page opens for a noVNC URL (or a serial URL's own)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return "/" + query["path"][0] if "path" in query else f"{parts.path}?{parts.query}"


async def test_proxy_joins_vnc_and_uses_token_once(api, root, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    path = ws_path(data["remote_console"]["url"])
    async with root.ws_connect(path, protocols=("binary",)) as ws:
        assert ws.protocol == "binary"
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == RFB_HELLO
        await ws.send_bytes(b"RFB 003.008\n")
        msg = await ws.receive(timeout=10)
        assert msg.data == b"echo:RFB 003.008\n"
    assert vnc.seen == [b"RFB 003.008\n"]
    # Used once: the row is gone and a second connection is refused.
    assert await rows(api, t.console_auth_token) == []
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(path)
    assert exc.value.status == 401


async def test_proxy_serial_and_refusals(api, root, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "serial", "serial", 200)
    serial = ws_path(data["remote_console"]["url"])
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    novnc = ws_path(data["remote_console"]["url"])
    # A serial token does not open a VNC session (and is not used up by trying).
    wrong = novnc.split("?")[0] + "?" + serial.split("?")[1]
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(wrong)
    assert exc.value.status == 401
    async with root.ws_connect(serial) as ws:
        assert (await ws.receive(timeout=10)).data == RFB_HELLO
        await ws.send_str("ls\r")               # text frames reach the console too
        assert (await ws.receive(timeout=10)).data == b"echo:ls\r"
    # A foreign page's origin is refused, without using the token up.
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(novnc, headers={"Origin": "http://evil.example"})
    assert exc.value.status == 403
    # Expired: refused, and purged when the next token is issued.
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.console_auth_token).values(
            expires_at=t.console_auth_token.c.created_at))
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(novnc)
    assert exc.value.status == 401
    await remote(api, uuid, "vnc", "novnc", 200)
    assert len(await rows(api, t.console_auth_token)) == 1


async def test_proxy_refuses_a_console_that_moved(api, root, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    agent_answers(api, vnc.port + 1)         # the guest was rebuilt: another port
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(ws_path(data["remote_console"]["url"]))
    assert exc.value.status == 404
    assert vnc.seen == []


async def test_novnc_page_is_served_without_a_token(make_api, tmp_path):
    novnc = tmp_path / "novnc"
    (novnc / "core").mkdir(parents=True)
    (novnc / "vnc_lite.html").write_text("<html><script>noVNC</script></html>")
    (novnc / "core" / "rfb.js").write_text("export default class RFB {}")
    (tmp_path / "secret").write_text("no")
    api = await make_api({"console": {"novnc_dir": str(novnc)}})
    client = TestClient(TestServer(build_root(api.cloud)))
    await client.start_server()
    try:
        resp = await client.get("/console/novnc/vnc_lite.html?path=console%2Fwebsockify")
        assert resp.status == 200 and "noVNC" in await resp.text()
        resp = await client.get("/console/novnc/core/rfb.js")
        assert resp.status == 200 and "javascript" in resp.content_type
        for bad in ("/console/novnc/../secret", "/console/novnc/core/../../secret",
                    "/console/novnc/%2e%2e/secret", "/console/novnc/missing.html"):
            resp = await client.get(bad)
            assert resp.status == 404, bad
    finally:
        await client.close()


async def test_shutdown_ends_open_sessions(api, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    client = TestClient(TestServer(build_root(api.cloud)))
    await client.start_server()
    ws = await client.ws_connect(ws_path(data["remote_console"]["url"]))
    assert (await ws.receive(timeout=10)).data == RFB_HELLO
    # The server's shutdown does not wait for the session to end by itself.
    await asyncio.wait_for(client.close(), 10)
    msg = await ws.receive(timeout=10)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def _raw_upgrade(port: int, path: str, want: int = 0) -> tuple[bytes, bytes]:
    """Tempest's websocket client (tempest.common.compute._WebSocket): a raw
    upgrade request; returns the response head and every byte after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Cookie: path=x\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
                 .encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    try:
        rest = await asyncio.wait_for(reader.read(4096), 10)
        while rest and len(rest) < want:
            rest += await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()
    return head, rest


async def test_tempest_websocket_client(api, root, vnc):
    """Tempest's test_novnc and test_novnc_bad_token, as its raw client sees them."""
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    path = ws_path(data["remote_console"]["url"])
    bad = path.replace("token=", "token=bad")
    # A bad token: a bare refusal, nothing after the head, connection closed.
    head, rest = await _raw_upgrade(root.port, bad)
    assert head.startswith(b"HTTP/1.1 401") and rest == b""
    # A good one: 101, the binary subprotocol, then the RFB greeting in one
    # unmasked binary frame.
    head, rest = await _raw_upgrade(root.port, path, want=2 + len(RFB_HELLO))
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    assert b"sec-websocket-protocol: binary" in head.lower()
    assert rest[:2] == bytes((0x82, len(RFB_HELLO))) and rest[2:] == RFB_HELLO


async def test_fake_agent_offers_no_console(tmp_path):
    """An agent's answer to console_info: the fake driver has nothing to offer
    (which the API reports as above); an unknown call is an error reply."""
    from cloudd.agent.executor import Executor
    from cloudd.agent.state import AgentState
    from cloudd.drivers.fake import FakeDriver

    async def send(command_id, result):
        pass

    ex = Executor(FakeDriver("h1"), AgentState(tmp_path).load(), send)
    reply = await ex.call("console_info", {"uuid": "u1", "kind": "vnc"})
    assert reply == {"ok": True, "data": {}, "error": None}
    assert (await ex.call("console_teleport", {}))["ok"] is False


async def test_proxy_refuses_a_deleted_instance(api, root, vnc):
    uuid = await active(api)
    agent_answers(api, vnc.port)
    _, data = await remote(api, uuid, "vnc", "novnc", 200)
    await remote(api, uuid, "serial", "serial", 200)
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(deleted=True))
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await root.ws_connect(ws_path(data["remote_console"]["url"]))
    assert exc.value.status == 401
    assert vnc.seen == [] and await rows(api, t.console_auth_token) == []
