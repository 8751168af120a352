"""Security group fan-out with real fake agents: servers booted into one
self-referencing group (every project's ``default``) cost a number of agent
commands linear in their count, and the agents' member sets follow members
coming and going (docs/network-design.md "Remote groups")."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from cloudd.agent.client import AgentClient
from cloudd.db import tables as t
from cloudd.drivers.fake import FakeDriver
from cloudd.services.compute import agent_auth, outbox
from cloudd.testing.poll import wait_for
from cloudd.web.app import build_root
from tests.compute.conftest import call
from tests.compute.test_servers_api import ALICE, boot

pytestmark = pytest.mark.asyncio

N = 30
HOSTS = ("fan1", "fan2")


@pytest_asyncio.fixture
async def cloud(make_api, tmp_path):
    """(api, {host: FakeDriver}): a cloud with two connected fake agents."""
    api = await make_api({"quota": {"instances": -1, "cores": -1, "ram": -1}})
    server = TestServer(build_root(api.cloud))
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    drivers, running = {}, []
    for host in HOSTS:
        secret, _ = await agent_auth.issue(api.cloud.db, host, 4)
        drivers[host] = FakeDriver(host, vcpus=64, memory_mb=65536, disk_gb=1000)
        client = AgentClient(url, host, secret, drivers[host], api.cloud.config.agent,
                             tmp_path / f"agent-{host}", backoff_min=0.05, backoff_max=0.2)
        stop = asyncio.Event()
        running.append((client, asyncio.create_task(client.run(stop)), stop))
    for client, task, _ in running:
        await wait_for(lambda c=client, t=task: c.ready.is_set() or t.done(), timeout=60)
        assert client.ready.is_set(), client.error
    yield api, drivers
    for _, _, stop in running:
        stop.set()
    await asyncio.gather(*(task for _, task, _ in running), return_exceptions=True)
    await server.close()


async def statuses(api) -> Counter:
    _, body = await call(api, "GET", "/v2.1/servers/detail", token=ALICE)
    return Counter(s["status"] for s in body["servers"])


async def commands(api) -> Counter:
    cmd = t.agent_command
    async with api.cloud.db.read() as conn:
        return Counter(r.op for r in await conn.execute(select(cmd.c.op)))


async def address_of(api, uuid) -> str:
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}", token=ALICE)
    [(_, [addr])] = body["server"]["addresses"].items()
    return f"{addr['addr']}/32"


async def test_booting_into_one_group_is_linear_and_member_sets_follow(cloud):
    api, drivers = cloud
    uuids = [await boot(api, name=f"fan-{i}") for i in range(N)]
    await wait_for(lambda: _all_active(api, N), timeout=120)
    ops = await commands(api)
    # One spawn per server; membership travels as one coalesced command per
    # host and change at most, never as a network_update per member pair:
    # the per-member fan-out wrote N(N-1)/2 = 435 network_updates for 30.
    assert ops["spawn"] == N and ops["network_update"] == 0
    assert ops["security_group_members"] <= len(HOSTS) * N
    assert sum(ops.values()) <= 3 * N < N * (N - 1) // 2

    addresses = {u: await address_of(api, u) for u in uuids}
    _, body = await call(api, "GET", "/v2.1/os-security-groups", token=ALICE)
    [group] = [g["id"] for g in body["security_groups"] if g["name"] == "default"]
    want = sorted(addresses.values())

    def holds(expected):
        return all(d.security_group_members.get(group, {}).get("IPv4") == expected
                   for d in drivers.values())

    # every host holds the whole group, whichever host a member is on
    await wait_for(lambda: holds(want), timeout=60)
    assert all(d.instances for d in drivers.values())

    # a member leaves (its server is deleted): every host's set drops it
    gone = uuids[0]
    before = {h: len(d.member_updates) for h, d in drivers.items()}
    await call(api, "DELETE", f"/v2.1/servers/{gone}", token=ALICE, status=204)
    await wait_for(lambda: holds(sorted(set(want) - {addresses[gone]})), timeout=60)
    assert all(len(d.member_updates) > before[h] for h, d in drivers.items())
    # a member joins: the sets gain it
    new = await boot(api, name="fan-new")
    await wait_for(lambda: _all_active(api, N), timeout=60)
    joined = sorted(set(want) - {addresses[gone]} | {await address_of(api, new)})
    await wait_for(lambda: holds(joined), timeout=60)


async def _all_active(api, count) -> bool:
    found = await statuses(api)
    assert not found.get("ERROR"), found
    return found.get("ACTIVE") == count and sum(found.values()) == count


async def test_an_unsent_member_command_is_replaced_not_added(make_api):
    api = await make_api()
    cmd = t.agent_command

    async def put(group, version, hosts=("h1",)):
        async with api.cloud.db.write() as conn:
            await outbox.coalesce(conn, hosts=hosts, op="security_group_members",
                                  args={"group_id": group,
                                        "members": {"version": version, "IPv4": [],
                                                    "IPv6": []}},
                                  key="group_id")

    async def waiting():
        async with api.cloud.db.read() as conn:
            rows = (await conn.execute(select(cmd.c.host, cmd.c.args, cmd.c.state)
                                       .order_by(cmd.c.host, cmd.c.created_at))).all()
        return [(r.host, json.loads(r.args)["group_id"],
                 json.loads(r.args)["members"]["version"], r.state) for r in rows]

    await put("g_1", 1, ("h1", "h2"))
    await put("g_1", 2)                         # replaces h1's, h2's stays
    await put("g_10", 3)                        # another group ("g_1" is its prefix)
    assert sorted(await waiting()) == [("h1", "g_1", 2, "pending"),
                                       ("h1", "g_10", 3, "pending"),
                                       ("h2", "g_1", 1, "pending")]
    async with api.cloud.db.write() as conn:   # the hub sent h1's
        await conn.execute(update(cmd).where(cmd.c.host == "h1").values(state="sent"))
    await put("g_1", 4)                         # a sent one is kept: a new one waits
    assert sorted(await waiting()) == [("h1", "g_1", 2, "sent"), ("h1", "g_1", 4, "pending"),
                                       ("h1", "g_10", 3, "sent"),
                                       ("h2", "g_1", 1, "pending")]
