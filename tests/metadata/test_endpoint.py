"""The controller's metadata endpoint (GET /agent/v1/metadata/PATH): Nova's
metadata API paths and bodies, for the one instance behind the address, on the
network, on the calling agent's host; nothing of any other instance."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.metadata.documents import OPENSTACK_VERSIONS, VERSIONS
from tests.metadata.conftest import USER_DATA

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(md):
    """web-1 (10.253.0.7 on h1, with a keypair) and db-1 (10.253.0.8 on h2)."""
    md.pub = await md.keypair()
    md.web = await md.server("web-1", host="h1", key_name="alice-key")
    md.db = await md.server("db-1", host="h2", user_data=b"db data")
    await md.plug(md.web, "10.253.0.7", host="h1")
    await md.plug(md.db, "10.253.0.8", host="h2")
    return md


async def test_openstack_paths(two):
    md = two
    status, body, ctype = await md.get("openstack")
    assert (status, ctype) == (200, "text/plain")
    assert body.decode().split("\n") == OPENSTACK_VERSIONS + ["latest"]
    status, body, _ = await md.get("openstack/latest/")
    assert body.decode().split("\n") == ["meta_data.json", "user_data", "password",
                                         "vendor_data.json", "network_data.json",
                                         "vendor_data2.json"]
    status, body, ctype = await md.get("openstack/latest/meta_data.json")
    assert (status, ctype) == (200, "application/json")
    meta = json.loads(body)
    assert meta["uuid"] == md.web and meta["public_keys"] == {"alice-key": md.pub}
    assert meta["hostname"] == "web-1.novalocal"
    status, body, _ = await md.get("openstack/2012-08-10/meta_data.json")
    assert status == 200 and "project_id" not in json.loads(body)
    status, body, _ = await md.get("openstack/latest/user_data")
    assert (status, body) == (200, USER_DATA)
    status, body, _ = await md.get("openstack/latest/network_data.json")
    assert status == 200
    assert json.loads(body)["networks"][0]["network_id"] == md.default_network
    status, body, ctype = await md.get("openstack/latest/vendor_data2.json")
    assert (status, json.loads(body), ctype) == (200, {"static": {}}, "application/json")
    assert (await md.get("openstack/latest/password"))[:2] == (200, b"")


async def test_ec2_paths(two):
    md = two
    status, body, _ = await md.get("/")
    assert (status, body.decode().split("\n")) == (200, VERSIONS + ["latest"])
    status, body, _ = await md.get("latest")
    assert (status, body) == (200, b"meta-data/\nuser-data")
    status, body, _ = await md.get("latest/meta-data/")
    listing = body.decode().split("\n")
    assert {"instance-id", "hostname", "local-ipv4", "public-keys/", "placement/",
            "block-device-mapping/", "security-groups", "ami-launch-index"} <= set(listing)
    assert listing == sorted(listing)
    assert (await md.get("latest/meta-data/instance-id"))[1] == \
        ("i-" + md.web.replace("-", "")[:8]).encode()
    assert (await md.get("latest/meta-data/hostname"))[1] == b"web-1.novalocal"
    assert (await md.get("latest/meta-data/local-ipv4"))[1] == b"10.253.0.7"
    assert (await md.get("latest/meta-data/public-keys"))[1] == b"0=alice-key"
    assert (await md.get("latest/meta-data/public-keys/0/"))[1] == b"openssh-key"
    assert (await md.get("latest/meta-data/public-keys/0/openssh-key"))[1] == md.pub.encode()
    assert (await md.get("latest/meta-data/placement/availability-zone"))[1] == b"nova"
    assert (await md.get("latest/user-data"))[1] == USER_DATA
    assert (await md.get("2009-04-04/meta-data/ami-launch-index"))[1] == b"0"
    assert (await md.get("ec2/2009-04-04/meta-data/hostname"))[1] == b"web-1.novalocal"
    # The older EC2 versions have fewer keys, as in Nova.
    assert (await md.get("1.0/meta-data/local-hostname"))[0] == 404


@pytest.mark.parametrize("path", [
    "openstack/2011-01-01/meta_data.json", "openstack/latest/nope", "openstack/content/0000",
    "latest/meta-data/nope", "2000-01-01/meta-data/", "latest/meta-data/hostname/x",
    "latest/meta-data/security-groups/default", "nothing-here"])
async def test_unknown_paths_are_404(two, path):
    status, body, ctype = await two.get(path)
    assert status == 404 and ctype == "text/plain"
    assert b"10.253" not in body and two.web.encode() not in body


async def test_only_the_instance_behind_the_address_on_the_agents_own_host(two):
    md = two
    # h2's agent asks with web-1's address: web-1 is on h1, so nothing.
    assert (await md.get("openstack/latest/meta_data.json", host="h2"))[0] == 404
    # h1's agent asks with db-1's address: db-1 is on h2, so nothing.
    assert (await md.get("openstack/latest/meta_data.json", host="h1",
                         address="10.253.0.8"))[0] == 404
    # The right host, the right address, another network: nothing.
    other = await md.subnet("10.77.0.0/24")
    assert (await md.get("openstack/latest/meta_data.json", network_id=other))[0] == 404
    # An address nobody has: nothing.
    assert (await md.get("latest/meta-data/instance-id", address="10.253.0.99"))[0] == 404
    # Each host's agent gets its own guest's data, and only that.
    status, body, _ = await md.get("openstack/latest/meta_data.json", host="h2",
                                   address="10.253.0.8")
    assert status == 200 and json.loads(body)["uuid"] == md.db
    assert (await md.get("openstack/latest/user_data", host="h2",
                         address="10.253.0.8"))[1] == b"db data"
    # Once web-1 is deleted its address answers nothing.
    async with md.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == md.web)
                           .values(deleted=True))
    assert (await md.get("openstack/latest/meta_data.json"))[0] == 404


async def test_a_moved_instance_is_answered_by_its_new_host_once_its_port_is(two):
    md = two
    async with md.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == md.web)
                           .values(host="h2", node="h2"))
    # The instance is on h2 but its port still bound to h1: neither answers.
    assert (await md.get("openstack/latest/meta_data.json", host="h1"))[0] == 404
    assert (await md.get("openstack/latest/meta_data.json", host="h2"))[0] == 404
    async with md.cloud.db.write() as conn:
        await conn.execute(update(t.port).where(t.port.c.device_id == md.web)
                           .values(binding_host_id="h2"))
    assert (await md.get("openstack/latest/meta_data.json", host="h1"))[0] == 404
    status, body, _ = await md.get("openstack/latest/meta_data.json", host="h2")
    assert status == 200 and json.loads(body)["uuid"] == md.web


async def test_a_freed_port_answers_nothing(two):
    md = two
    async with md.cloud.db.write() as conn:
        await md.cloud.network.deallocate_for_instance(conn, md.web)
    assert (await md.get("openstack/latest/meta_data.json"))[0] == 404


async def test_credentials_and_headers(two):
    md = two
    await md.credential("h1")
    status, body, _ = await md.get("openstack/latest/meta_data.json",
                                   auth="Bearer h1:wrong-secret")
    assert status == 401 and md.web.encode() not in body
    status, _, _ = await md.get("openstack", auth="Bearer nobody:x")
    assert status == 401
    status, _, _ = await md.get("openstack", auth="Basic abc")
    assert status == 401
    assert (await md.get("openstack/latest/meta_data.json", address=None))[0] == 400
    assert (await md.get("openstack/latest/meta_data.json", address="not-an-ip"))[0] == 400
    assert (await md.get("openstack/latest/meta_data.json", network_id=""))[0] == 400
    resp = await md.root.post("/agent/v1/metadata/openstack/latest/password",
                              headers={"Authorization": await md.credential("h1")})
    assert resp.status == 405
