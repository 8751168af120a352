"""The agent hub and the agent over a real websocket, on SQLite and PostgreSQL.

An in-process controller (Cloud + the main application on a real port) and
AgentClient instances with fake drivers.
"""

from __future__ import annotations

import asyncio
import json
import uuid as uuidlib

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from cloudd.agent.client import AgentClient
from cloudd.agent.executor import Executor
from cloudd.agent.state import AgentState
from cloudd.config import Config
from cloudd.db import tables as t
from cloudd.drivers.base import InstanceSpec, PowerState
from cloudd.drivers.fake import FakeDriver
from cloudd.server import Cloud
from cloudd.services.compute import agent_auth, hosts, outbox
from cloudd.services.compute.agent_hub import AgentCallFailed, AgentUnavailable
from cloudd.services.compute.tasks import utcnow
from cloudd.testing.poll import wait_for
from cloudd.web.app import build_root

pytestmark = pytest.mark.asyncio

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


class Controller:
    def __init__(self, cloud: Cloud, server: TestServer, tmp_path) -> None:
        self.cloud = cloud
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")
        self.tmp = tmp_path
        self.agents: list[tuple[AgentClient, asyncio.Task, asyncio.Event]] = []
        self.casts: list[str] = []

    async def add_host(self, name: str) -> str:
        secret, _ = await agent_auth.issue(self.cloud.db, name, 4)
        return secret

    def agent(self, name: str, secret: str, driver: FakeDriver | None = None,
              **kw) -> tuple[AgentClient, asyncio.Task, asyncio.Event]:
        driver = driver or FakeDriver(name, vcpus=8, memory_mb=16384, disk_gb=200)
        client = AgentClient(self.url, name, secret, driver, self.cloud.config.agent,
                             self.tmp / f"agent-{name}", backoff_min=0.05, backoff_max=0.2,
                             **kw)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        self.agents.append((client, task, stop))
        return client, task, stop

    async def connected(self, name: str, secret: str, driver=None, **kw) -> AgentClient:
        client, task, _ = self.agent(name, secret, driver, **kw)
        await wait_for(lambda: client.ready.is_set() or task.done())
        assert client.ready.is_set(), client.error
        return client

    async def stop_agents(self) -> None:
        for _, task, stop in self.agents:
            stop.set()
        await asyncio.gather(*(task for _, task, _ in self.agents), return_exceptions=True)

    async def command(self, cid: str):
        async with self.cloud.db.read() as conn:
            return (await conn.execute(select(t.agent_command)
                                       .where(t.agent_command.c.id == cid))).first()

    async def enqueue(self, host: str, op: str, args: dict, task_id: str | None = None,
                      instance_uuid: str | None = None) -> str:
        async with self.cloud.db.write() as conn:
            cid = await outbox.enqueue(conn, host=host, op=op, args=args, task_id=task_id,
                                       instance_uuid=instance_uuid)
        self.cloud.compute.hub.notify(host)
        return cid

    async def done(self, cid: str, timeout: float = 10.0):
        async def check():
            row = await self.command(cid)
            return row if row.state == "done" else None
        return await wait_for(check, timeout)

    async def service(self, host: str, binary: str = "nova-compute"):
        async with self.cloud.db.read() as conn:
            return (await conn.execute(select(t.compute_service).where(
                t.compute_service.c.host == host,
                t.compute_service.c.binary_name == binary))).first()


@pytest_asyncio.fixture
async def controller(backend, database_url, tmp_path):
    data = tmp_path / "data"
    cfg = Config.model_validate({
        "server": {"data_dir": str(data)},
        "database": {"url": database_url(backend, data)},
        "auth": {"strategy": "noauth2"},
        "identity": {"password_hash_rounds": 4},
        "compute": {"local_agent": "none", "heartbeat_interval": 0.2,
                    "service_down_time": 1.0, "command_timeout": 30.0}})
    cloud = Cloud(cfg)
    await cloud.start()
    server = TestServer(build_root(cloud))
    await server.start_server()
    ctl = Controller(cloud, server, tmp_path)
    cloud.compute.conductor.cast = lambda task_id: ctl.casts.append(task_id)
    yield ctl
    await ctl.stop_agents()
    await server.close()
    await cloud.stop(5)


def spec(uuid: str, name: str = "vm") -> dict:
    return {"uuid": uuid, "name": name, "vcpus": 1, "memory_mb": 512, "root_gb": 1,
            "image": {"id": "img"}}


async def add_instance(cloud, uuid: str, host: str, vm_state: str = "active",
                       power_state: int = 1, deleted: bool = False) -> None:
    now = utcnow()
    async with cloud.db.write() as conn:
        await conn.execute(t.instance.insert().values(
            uuid=uuid, display_name="vm", project_id="p", user_id="u", host=host, node=host,
            flavor="{}", vm_state=vm_state, power_state=power_state, reservation_id="r-1",
            created_at=now, deleted=deleted, deleted_at=now if deleted else None))


async def instance(cloud, uuid: str):
    async with cloud.db.read() as conn:
        return (await conn.execute(select(t.instance).where(t.instance.c.uuid == uuid))).first()


async def test_hello_registers_service_node_and_placement_inventory(controller):
    secret = await controller.add_host("node1")
    await controller.connected("node1", secret)
    svc = await controller.service("node1")
    assert (svc.zone, svc.disabled, svc.forced_down) == ("nova", False, False)
    assert hosts.is_up(svc, 1.0, utcnow())
    async with controller.cloud.db.read() as conn:
        node = (await conn.execute(select(t.compute_node).where(
            t.compute_node.c.host == "node1"))).first()
    assert (node.hypervisor_hostname, node.vcpus, node.memory_mb, node.local_gb,
            node.hypervisor_type, node.service_id) == ("node1", 8, 16384, 200, "fake", svc.id)
    # The controller's own services are there too.
    assert await controller.service(controller.cloud.compute.hub.hostname, "nova-conductor")
    # Placement has the provider (same uuid, named after the node) and its inventory,
    # with the [agent] allocation ratios and reserved amounts.
    async with aiohttp.ClientSession(headers={"X-Auth-Token": "admin",
                                              "OpenStack-API-Version": "placement 1.39"}) as s:
        async with s.get(f"{controller.url}/placement/resource_providers/{node.id}") as r:
            assert r.status == 200
            assert (await r.json())["name"] == "node1"
        async with s.get(f"{controller.url}/placement/resource_providers/{node.id}"
                         "/inventories") as r:
            inv = (await r.json())["inventories"]
    assert inv["VCPU"]["total"] == 8 and inv["VCPU"]["allocation_ratio"] == 4.0
    assert inv["MEMORY_MB"]["total"] == 16384 and inv["MEMORY_MB"]["reserved"] == 512
    assert inv["DISK_GB"]["total"] == 200 and inv["DISK_GB"]["reserved"] == 0
    # Reconnecting (a bigger host now) updates the same rows, not new ones.
    await controller.stop_agents()
    await controller.connected("node1", secret, FakeDriver("node1", vcpus=32))
    async with controller.cloud.db.read() as conn:
        nodes = (await conn.execute(select(t.compute_node))).all()
        vcpu = (await conn.execute(select(t.inventory.c.total).where(
            t.inventory.c.resource_provider_uuid == node.id,
            t.inventory.c.resource_class == "VCPU"))).scalar()
    assert [(n.id, n.vcpus) for n in nodes] == [(node.id, 32)] and vcpu == 32


async def test_bad_credential_is_401_and_the_agent_exits(controller):
    await controller.add_host("node1")
    async with aiohttp.ClientSession() as s, s.get(controller.url + "/agent/v1",
                     headers={"Authorization": "Bearer node1:wrong"}) as r:
        assert r.status == 401
        assert "cloudd host add" in (await r.json())["error"]["message"]
    client, task, _ = controller.agent("node1", "wrong")
    assert await asyncio.wait_for(task, 10) == 1
    assert "rejected the credential" in client.error and "401" in client.error
    client, task, _ = controller.agent("ghost", "whatever")
    assert await asyncio.wait_for(task, 10) == 1
    assert await controller.service("node1") is None


async def test_protocol_version_outside_the_range_is_refused(controller):
    secret = await controller.add_host("node1")
    client, task, _ = controller.agent("node1", secret, protocol_version=99)
    assert await asyncio.wait_for(task, 10) == 1
    assert "protocol version 99 is not supported" in client.error
    assert await controller.service("node1") is None


async def test_command_runs_once_result_stored_and_conductor_woken(controller):
    secret = await controller.add_host("node1")
    driver = FakeDriver("node1")
    await controller.connected("node1", secret, driver)
    u = str(uuidlib.uuid4())
    cid = await controller.enqueue("node1", "spawn", {"spec": spec(u)}, task_id="task-1",
                                   instance_uuid=u)
    row = await controller.done(cid)
    result = json.loads(row.result)
    assert result["ok"] is True and result["power_state"] == PowerState.RUNNING
    assert row.sent_at is not None
    assert list(driver.calls) == [("spawn", u)]
    await wait_for(lambda: controller.casts == ["task-1"])
    # A failing command: ok false with the driver's words and its retryable flag.
    driver.retryable_failure = True
    u2 = str(uuidlib.uuid4())
    cid = await controller.enqueue("node1", "spawn", {"spec": spec(u2)}, task_id="task-2")
    result = json.loads((await controller.done(cid)).result)
    assert (result["ok"], result["retryable"]) == (False, True)
    assert "fake spawn failure" in result["error"]


async def test_resent_command_after_reconnect_is_not_run_again(controller):
    secret = await controller.add_host("node1")
    driver = FakeDriver("node1", delay=0.5)
    client = await controller.connected("node1", secret, driver)
    u = str(uuidlib.uuid4())
    cid = await controller.enqueue("node1", "spawn", {"spec": spec(u)}, task_id="t",
                                   instance_uuid=u)
    await wait_for(lambda: driver.calls)            # running on the agent now
    await client.ws.close()                         # the connection drops mid-command
    await wait_for(lambda: client.connections >= 2)
    row = await controller.done(cid)
    assert json.loads(row.result)["ok"] is True
    await asyncio.sleep(0.3)
    assert list(driver.calls) == [("spawn", u)]
    assert controller.casts == ["t"]


async def test_one_instance_in_order_different_instances_concurrently(controller):
    secret = await controller.add_host("node1")
    driver = FakeDriver("node1", delay=0.2)
    await controller.connected("node1", secret, driver)
    a, b = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    ids = [await controller.enqueue("node1", "spawn", {"spec": spec(a)}, instance_uuid=a),
           await controller.enqueue("node1", "power_off", {"uuid": a}, instance_uuid=a),
           await controller.enqueue("node1", "spawn", {"spec": spec(b)}, instance_uuid=b)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    rows = [await controller.done(cid) for cid in ids]
    assert loop.time() - began < 0.6                # b ran beside a's two commands
    assert [c for c in driver.calls if c[1] == a] == [("spawn", a), ("power_off", a)]
    assert json.loads(rows[1].result)["power_state"] == PowerState.SHUTDOWN


async def test_results_survive_an_agent_restart(tmp_path):
    driver = FakeDriver("h")
    sent: list = []

    async def send(cid, res):
        sent.append(cid)

    first = Executor(driver, AgentState(tmp_path).load(), send)
    await first.submit({"id": "c1", "op": "spawn", "args": {"spec": spec("u1")}})
    await wait_for(lambda: sent == ["c1"])
    # A new process: same state directory, the controller sends c1 again.
    second = Executor(driver, AgentState(tmp_path).load(), send)
    await second.submit({"id": "c1", "op": "spawn", "args": {"spec": spec("u1")}})
    assert sent == ["c1", "c1"] and list(driver.calls) == [("spawn", "u1")]
    assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"


def recording_executor(tmp_path, driver=None) -> tuple[Executor, dict]:
    """An agent's executor on ``driver`` (a fake one by default) whose
    results land in the returned dict, by command id."""
    results: dict = {}

    async def send(cid, res):
        results[cid] = res

    return Executor(driver or FakeDriver("h"), AgentState(tmp_path).load(), send), results


async def test_network_update_is_answered_ok_without_host_plumbing(tmp_path):
    # The fake driver has no host networking: the command is done, not crashed.
    ex, results = recording_executor(tmp_path)
    await ex.submit({"id": "c1", "op": "spawn", "args": {"spec": spec("u1")}})
    await ex.submit({"id": "c2", "op": "network_update",
                     "args": {"uuid": "u1", "network_info": []}})
    await wait_for(lambda: "c2" in results)
    assert results["c2"]["ok"] is True and results["c2"]["error"] is None


async def test_interface_commands_reach_the_driver(tmp_path):
    driver = FakeDriver("h")
    ex, results = recording_executor(tmp_path, driver)
    vif = {"port_id": "p9", "mac": "fa:16:3e:00:00:09", "bridge": "cdbr-n9"}
    await ex.submit({"id": "c1", "op": "spawn", "args": {"spec": spec("u1")}})
    await ex.submit({"id": "c2", "op": "attach_interface", "args": {"uuid": "u1", "vif": vif}})
    await ex.submit({"id": "c3", "op": "attach_interface", "args": {"uuid": "u1"}})
    await wait_for(lambda: "c3" in results)
    assert results["c2"]["ok"] is True and results["c2"]["power_state"] == 1
    assert driver.vifs["u1"] == [vif]
    assert results["c3"]["error"] == "attach_interface needs a vif"
    await ex.submit({"id": "c4", "op": "detach_interface",
                     "args": {"uuid": "u1", "port_id": "p9", "vif": vif}})
    await wait_for(lambda: "c4" in results)
    assert results["c4"]["ok"] is True and driver.vifs["u1"] == []


async def test_the_agent_applies_members_through_the_driver_newest_wins(tmp_path):
    driver = FakeDriver("h")
    ex, results = recording_executor(tmp_path, driver)

    def members(version, *v4):
        return {"group_id": "g", "members": {"version": version, "IPv4": list(v4),
                                             "IPv6": []}}

    await ex.submit({"id": "c1", "op": "security_group_members",
                     "args": members(2, "10.0.0.2/32", "10.0.0.1/32")})
    await ex.submit({"id": "c2", "op": "security_group_members",
                     "args": members(1, "10.0.0.9/32")})          # older: ignored
    await ex.submit({"id": "c3", "op": "security_group_members", "args": {"group_id": "g"}})
    await wait_for(lambda: len(results) == 3, timeout=5)
    assert results["c1"]["ok"] and results["c2"]["ok"] and results["c1"]["power_state"] is None
    assert not results["c3"]["ok"] and "needs a group id and members" in results["c3"]["error"]
    assert driver.security_group_members["g"] == {
        "version": 2, "IPv4": ["10.0.0.1/32", "10.0.0.2/32"], "IPv6": []}
    assert driver.member_updates == ["g", "g"]
    await ex.submit({"id": "c1", "op": "security_group_members",
                     "args": members(3)})                        # a repeated id: not run
    await asyncio.sleep(0.05)
    assert driver.member_updates == ["g", "g"]
    await ex.close()


async def test_heartbeats_and_down_after_silence(controller):
    secret = await controller.add_host("node1")
    await controller.connected("node1", secret)
    first = (await controller.service("node1")).last_seen_at
    later = await wait_for(lambda: _seen_after(controller, first), timeout=3)
    assert later > first
    await controller.stop_agents()
    await asyncio.sleep(1.3)
    assert not hosts.is_up(await controller.service("node1"), 1.0, utcnow())
    # The controller's own services stay up: it refreshes them itself.
    own = await controller.service(controller.cloud.compute.hub.hostname, "nova-scheduler")
    assert hosts.is_up(own, 1.0, utcnow())


async def _seen_after(controller, first):
    svc = await controller.service("node1")
    return svc.last_seen_at if svc.last_seen_at > first else None


async def test_console_output_call_and_unavailable_hosts(controller):
    secret = await controller.add_host("node1")
    driver = FakeDriver("node1")
    await controller.connected("node1", secret, driver)
    await driver.spawn(InstanceSpec(uuid="u1", name="web", vcpus=1, memory_mb=1, root_gb=1))
    hub = controller.cloud.compute.hub
    data = await hub.call("node1", "console_output", {"uuid": "u1", "lines": 1}, timeout=5)
    assert data == {"output": "web login: "}
    with pytest.raises(AgentCallFailed, match="not found"):
        await hub.call("node1", "console_output", {"uuid": "nope"}, timeout=5)
    with pytest.raises(AgentUnavailable):
        await hub.call("elsewhere", "console_output", {"uuid": "u1"}, timeout=1)


async def test_hello_reconciles_orphans_and_power_states(controller):
    cloud = controller.cloud
    secret = await controller.add_host("node1")
    driver = FakeDriver("node1")
    orphan, deleted, off, gone = (str(uuidlib.uuid4()) for _ in range(4))
    await add_instance(cloud, deleted, "node1", vm_state="deleted", deleted=True)
    await add_instance(cloud, off, "node1")                  # active in the database
    await add_instance(cloud, gone, "node1")                 # active, but not on the host
    for u in (orphan, deleted, off):
        await driver.spawn(InstanceSpec(uuid=u, name="x", vcpus=1, memory_mb=1, root_gb=1))
    await driver.power_off(off)                              # it shut itself down
    await controller.connected("node1", secret, driver)
    await wait_for(lambda: set(driver.instances) == {off})   # orphans destroyed
    row = await instance(cloud, off)
    assert (row.vm_state, row.power_state) == ("stopped", PowerState.SHUTDOWN)
    row = await instance(cloud, gone)
    assert (row.vm_state, row.power_state) == ("active", PowerState.NOSTATE)
    # An instance that powers off later is seen through the driver's event.
    async with cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == off)
                           .values(vm_state="active", power_state=1))
    await driver.power_on(off)
    await driver.power_off(off)

    async def stopped():
        return (await instance(cloud, off)).vm_state == "stopped"
    await wait_for(stopped)


async def test_removed_credential_disconnects_the_agent(controller):
    secret = await controller.add_host("node1")
    client, task, _ = controller.agent("node1", secret)
    await wait_for(client.ready.is_set)
    assert await agent_auth.remove(controller.cloud.db, "node1")
    assert await asyncio.wait_for(task, 10) == 1          # reconnect gets a 401
    assert not controller.cloud.compute.hub.connected("node1")
