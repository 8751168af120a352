"""The agent's metadata proxy against a real controller over TCP: a guest's
request reaches the controller with the agent's credential, the network and
the guest's source address, and the guest gets only its own documents.

Guests are played by loopback addresses: the listener is on 127.0.0.1 as it
would be on a bridge's host address, and a client bound to 127.0.0.2 is
another guest on the same network.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from cloudd.agent.metadata_proxy import MetadataProxy
from cloudd.testing.postgres import free_port
from cloudd.web.app import build_root
from tests.compute.conftest import IMAGE
from tests.metadata.conftest import USER_DATA

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def proxied(md):
    """web-1 at 127.0.0.1 and db-1 at 127.0.0.2 on md.net, both on h1; h1's proxy."""
    md.net = await md.subnet("127.0.0.0/24", gateway_ip="127.0.0.254")
    md.pub = await md.keypair()
    md.web = await md.server("web-1", key_name="alice-key")
    md.db = await md.server("db-1", user_data=b"db data")
    await md.plug(md.web, "127.0.0.1", network_id=md.net)
    await md.plug(md.db, "127.0.0.2", network_id=md.net)
    controller = TestServer(build_root(md.cloud), host="127.0.0.1", port=free_port())
    await controller.start_server()
    secret = (await md.credential("h1")).split(":", 1)[1]
    md.proxy = MetadataProxy(f"http://127.0.0.1:{controller.port}", "h1", secret,
                             port=free_port())
    try:
        yield md
    finally:
        await md.proxy.close()
        await controller.close()


async def guest_get(proxy, path, *, guest="127.0.0.1", listen="127.0.0.1"):
    connector = aiohttp.TCPConnector(local_addr=(guest, 0), force_close=True)
    url = f"http://{listen}:{proxy.port}/{path.lstrip('/')}"
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(url) as resp:
        return resp.status, await resp.read(), resp.content_type


async def raw_get(proxy, target: str, listen="127.0.0.1") -> tuple[int, bytes]:
    """A request line sent as is (no client-side path normalisation)."""
    reader, writer = await asyncio.open_connection(listen, proxy.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_each_guest_gets_its_own_documents(proxied):
    md = proxied
    await md.proxy.ensure(md.net, "127.0.0.1/8")
    status, body, ctype = await guest_get(md.proxy, "openstack/latest/meta_data.json")
    assert (status, ctype) == (200, "application/json")
    meta = json.loads(body)
    assert meta["uuid"] == md.web and meta["public_keys"] == {"alice-key": md.pub}
    assert (await guest_get(md.proxy, "latest/meta-data/public-keys/0/openssh-key"))[1] \
        == md.pub.encode()
    assert (await guest_get(md.proxy, "openstack/latest/user_data"))[1] == USER_DATA
    status, body, _ = await guest_get(md.proxy, "openstack")
    assert status == 200 and body.decode().endswith("\nlatest")
    # Another guest on the same network and host: its own data only.
    status, body, _ = await guest_get(md.proxy, "openstack/latest/meta_data.json",
                                      guest="127.0.0.2")
    assert status == 200 and json.loads(body)["uuid"] == md.db
    assert (await guest_get(md.proxy, "latest/user-data", guest="127.0.0.2"))[1] == b"db data"
    # A source address that is nobody's: nothing.
    status, body, _ = await guest_get(md.proxy, "openstack/latest/meta_data.json",
                                      guest="127.0.0.3")
    assert status == 404 and md.web.encode() not in body and md.db.encode() not in body
    assert (await guest_get(md.proxy, "openstack/latest/nope"))[0] == 404


async def test_the_listener_speaks_for_its_own_network_only(proxied):
    md = proxied
    other = await md.subnet("10.78.0.0/24")
    await md.proxy.ensure(other, "127.0.0.1/8")             # web-1 has no port there
    status, _, _ = await guest_get(md.proxy, "openstack/latest/meta_data.json")
    assert status == 404


@pytest.mark.parametrize("target", [
    f"/../../images/{IMAGE}/file", f"/%2e%2e/%2e%2e/images/{IMAGE}/file",
    f"/..%2f..%2fimages%2f{IMAGE}%2ffile", f"http://127.0.0.1/../../images/{IMAGE}"])
async def test_a_guest_cannot_leave_the_metadata_tree(proxied, target):
    md = proxied
    await md.proxy.ensure(md.net, "127.0.0.1/8")
    status, body = await raw_get(md.proxy, target)
    assert status in (400, 404)
    assert b"\0" * 64 not in body and b"disk_format" not in body


async def test_ensure_is_idempotent_moves_and_remove_stops(proxied):
    md = proxied
    await md.proxy.ensure(md.net, "127.0.0.1/8")
    await md.proxy.ensure(md.net, "127.0.0.1/8")
    assert list(md.proxy.listeners) == [md.net]
    assert (await guest_get(md.proxy, "latest/meta-data/local-ipv4"))[1] == b"127.0.0.1"
    await md.proxy.ensure(md.net, "127.0.0.5/8")           # the host address moved
    with pytest.raises(aiohttp.ClientConnectionError):
        await guest_get(md.proxy, "openstack")
    status, body, _ = await guest_get(md.proxy, "latest/meta-data/local-ipv4",
                                      listen="127.0.0.5")
    assert (status, body) == (200, b"127.0.0.1")
    await md.proxy.remove(md.net)
    await md.proxy.remove(md.net)
    assert md.proxy.listeners == {}
    with pytest.raises(aiohttp.ClientConnectionError):
        await guest_get(md.proxy, "openstack", listen="127.0.0.5")


async def test_only_get_is_forwarded(proxied):
    md = proxied
    await md.proxy.ensure(md.net, "127.0.0.1")
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{md.proxy.port}/openstack/latest/password"
        async with session.post(url, data=b"secret") as resp:
            assert resp.status == 405


async def test_a_refused_credential_or_a_dead_controller_is_a_500(md):
    net = await md.subnet("127.0.0.0/24", gateway_ip="127.0.0.254")
    await md.plug(await md.server(), "127.0.0.1", network_id=net)
    controller = TestServer(build_root(md.cloud), host="127.0.0.1", port=free_port())
    await controller.start_server()
    bad = MetadataProxy(f"http://127.0.0.1:{controller.port}", "h1", "wrong", port=free_port())
    dead = MetadataProxy(f"http://127.0.0.1:{free_port()}", "h1", "x", port=free_port(),
                         timeout=5)
    try:
        await md.credential("h1")
        for proxy in (bad, dead):
            await proxy.ensure(net, "127.0.0.1/8")
            status, body, _ = await guest_get(proxy, "openstack/latest/meta_data.json")
            assert status == 500 and b"unknown error" in body
    finally:
        await bad.close()
        await dead.close()
        await controller.close()
