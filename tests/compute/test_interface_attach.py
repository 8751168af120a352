"""Interface attach and detach (os-interface POST/DELETE) with the cloud's own
network service: the port is made or bound on the instance's host, the
agent's attach_interface/detach_interface carry its vif, a failure gives the
port back; Nova's validation, state guards, errors and instance actions."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from cloudd.db import tables as t
from tests.compute.conftest import call
from tests.compute.test_server_networks import (
    ALICE,
    boot,
    ips_held,
    nq,
    own_network,
    ports_of,
    run_woken,
    show,
)

pytestmark = pytest.mark.asyncio


async def attach(env, uuid, body, *, version="2.1", status=200, token=ALICE):
    """POST os-interface while playing the agents (the request waits for its task)."""
    api, sim, _ = env
    request = asyncio.create_task(call(api, "POST", f"/v2.1/servers/{uuid}/os-interface",
                                       body, token=token, version=version))
    while not request.done():
        await run_woken(api, sim)
        await asyncio.sleep(0.01)
    resp, data = await request
    assert resp.status == status, (resp.status, data)
    return data


async def detach(env, uuid, port_id, *, status=202, token=ALICE):
    api, sim, _ = env
    _, data = await call(api, "DELETE", f"/v2.1/servers/{uuid}/os-interface/{port_id}",
                         token=token, status=status)
    await run_woken(api, sim)
    return data


async def interfaces(env, uuid, version="2.1"):
    _, data = await call(env[0], "GET", f"/v2.1/servers/{uuid}/os-interface", token=ALICE,
                         version=version, status=200)
    return data["interfaceAttachments"]


def commands(sim, op):
    return [a for (_, o, _), a in zip(sim.log, sim.args) if o == op]


async def actions(env, uuid):
    _, data = await call(env[0], "GET", f"/v2.1/servers/{uuid}/os-instance-actions",
                         token=ALICE, status=200)
    return sorted(a["action"] for a in data["instanceActions"])


async def events(env, uuid, action):
    """The instance's (only or latest) ``action`` with its events."""
    _, data = await call(env[0], "GET", f"/v2.1/servers/{uuid}/os-instance-actions",
                         token=ALICE, status=200)
    act = next(a for a in data["instanceActions"] if a["action"] == action)
    _, data = await call(env[0], "GET", f"/v2.1/servers/{uuid}/os-instance-actions/"
                         f"{act['request_id']}", version="2.51", status=200)
    return data["instanceAction"]


async def test_attach_by_network_then_detach_deletes_the_port(real):
    api, sim, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.80.0/24")
    att = (await attach(real, uuid, {"interfaceAttachment": {"net_id": mine}},
                        version="2.70"))["interfaceAttachment"]
    assert att["net_id"] == mine and att["port_state"] == "ACTIVE" and att["tag"] is None
    [ip] = att["fixed_ips"]
    assert ip["ip_address"].startswith("192.168.80.")
    ports = {p.id: p for p in await ports_of(api, uuid)}
    assert set(ports) == {att["port_id"], *(p for p in ports if p != att["port_id"])}
    made = ports[att["port_id"]]
    assert (made.binding_host_id, made.device_owner, made.status) == \
        ("host1", "compute:nova", "ACTIVE")
    [cmd] = commands(sim, "attach_interface")
    assert cmd["uuid"] == uuid and cmd["vif"]["port_id"] == att["port_id"]
    assert cmd["vif"]["bridge"] == f"cdbr-{mine[:10]}"
    assert cmd["vif"]["subnets"][0]["ips"] == [ip["ip_address"]]
    # listed second (the boot's port first), and in the server's addresses
    assert [i["port_id"] for i in await interfaces(real, uuid)][1] == att["port_id"]
    assert (await show(real, uuid))["addresses"]["mine"][0]["addr"] == ip["ip_address"]
    # a later spawn (rebuild, resize) carries both vifs: the next network_update too
    evs = await events(real, uuid, "attach_interface")
    assert [(e["event"], e["result"]) for e in evs["events"]] == \
        [("compute_attach_interface", "Success")]

    await detach(real, uuid, att["port_id"])
    [cmd] = commands(sim, "detach_interface")
    assert (cmd["uuid"], cmd["port_id"]) == (uuid, att["port_id"])
    assert att["port_id"] not in {p.id for p in await ports_of(api, uuid)}
    await nq(neutron, "GET", f"/ports/{att['port_id']}", status=404)   # deleted
    assert ip["ip_address"] not in await ips_held(api)
    assert [i["port_id"] for i in await interfaces(real, uuid)] != [att["port_id"]]
    assert await actions(real, uuid) == ["attach_interface", "create", "detach_interface"]
    server = await show(real, uuid)
    assert server["status"] == "ACTIVE" and "mine" not in server["addresses"]


async def test_attach_a_users_port_and_detach_keeps_it_unbound(real):
    api, _, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.81.0/24")
    port = (await nq(neutron, "POST", "/ports", {"port": {"network_id": mine}},
                     status=201))["port"]
    att = (await attach(real, uuid, {"interfaceAttachment": {"port_id": port["id"],
                                                             "tag": "nic2"}},
                        version="2.70"))["interfaceAttachment"]
    assert (att["port_id"], att["mac_addr"], att["tag"]) == \
        (port["id"], port["mac_address"], "nic2")
    bound = (await nq(neutron, "GET", f"/ports/{port['id']}", token="admin",
                      status=200))["port"]
    assert (bound["device_id"], bound["binding:host_id"], bound["status"]) == \
        (uuid, "host1", "ACTIVE")
    _, shown = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface/{port['id']}",
                          token=ALICE, version="2.70", status=200)
    assert shown["interfaceAttachment"]["tag"] == "nic2"
    _, shown = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface/{port['id']}",
                          token=ALICE, version="2.69", status=200)
    assert "tag" not in shown["interfaceAttachment"]
    # in use: a second server cannot have it
    other = await boot(real)
    err = await attach(real, other, {"interfaceAttachment": {"port_id": port["id"]}},
                       status=409)
    assert err["conflictingRequest"]["message"] == f"Port {port['id']} is still in use."

    await detach(real, uuid, port["id"])
    kept = (await nq(neutron, "GET", f"/ports/{port['id']}", token="admin",
                     status=200))["port"]
    assert (kept["device_id"], kept["binding:host_id"], kept["device_owner"]) == ("", "", "")
    assert kept["fixed_ips"] == port["fixed_ips"]
    # free again: the other server takes it
    att = (await attach(real, other, {"interfaceAttachment": {"port_id": port["id"]}})
           )["interfaceAttachment"]
    assert "tag" not in att
    assert (await nq(neutron, "GET", f"/ports/{port['id']}", status=200)
            )["port"]["device_id"] == other


async def test_attach_with_a_fixed_ip_and_without_a_network(real):
    _, _, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.82.0/24")
    att = (await attach(real, uuid, {"interfaceAttachment": {
        "net_id": mine, "fixed_ips": [{"ip_address": "192.168.82.50"}]}})
    )["interfaceAttachment"]
    assert att["fixed_ips"][0]["ip_address"] == "192.168.82.50"
    err = await attach(real, uuid, {"interfaceAttachment": {
        "net_id": mine, "fixed_ips": [{"ip_address": "192.168.82.50"}]}}, status=409)
    assert err["conflictingRequest"]["message"] == "Fixed IP 192.168.82.50 is already in use."
    err = await attach(real, uuid, {"interfaceAttachment": {
        "net_id": mine, "fixed_ips": [{"ip_address": "10.9.9.9"}]}}, status=400)
    assert err["badRequest"]["message"] == \
        f"Fixed IP 10.9.9.9 is not a valid ip address for network {mine}."
    # no body: the one network the project has
    att = (await attach(real, uuid, None))["interfaceAttachment"]
    assert att["net_id"] == mine
    await own_network(neutron, "second", "192.168.83.0/24")
    err = await attach(real, uuid, {"interfaceAttachment": {}}, status=400)
    assert err["badRequest"]["message"] == (
        "Multiple possible networks found, use a Network ID to be more specific.")


async def test_bad_requests_change_nothing(real):
    api, sim, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.84.0/24")
    bobs = await own_network(neutron, "bobs", "192.168.85.0/24", token="bob:p2")
    before = ({p.id for p in await ports_of(api, uuid)}, await ips_held(api),
              await actions(real, uuid))
    missing = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    cases = [
        ({"interfaceAttachment": {"net_id": mine, "port_id": missing}}, "2.1", 400,
         "badRequest", "Must not input both network_id and port_id"),
        ({"interfaceAttachment": {"fixed_ips": [{"ip_address": "192.168.84.9"}]}}, "2.1",
         400, "badRequest", "Must input network_id when request IP address"),
        ({"interfaceAttachment": {"net_id": missing}}, "2.1", 404, "itemNotFound",
         f"Network {missing} could not be found."),
        ({"interfaceAttachment": {"net_id": bobs}}, "2.1", 404, "itemNotFound",
         f"Network {bobs} could not be found."),
        ({"interfaceAttachment": {"port_id": missing}}, "2.1", 404, "itemNotFound",
         f"Port id {missing} could not be found."),
        ({"interfaceAttachment": {"net_id": "nope"}}, "2.1", 400, "badRequest", None),
        ({"interfaceAttachment": {"net_id": mine, "tag": "x"}}, "2.48", 400,
         "badRequest", None),
        ({"interfaceAttachment": {"net_id": mine, "fixed_ips": []}}, "2.1", 400,
         "badRequest", None),
        ({"bogus": 1}, "2.1", 400, "badRequest", None),
    ]
    for body, version, status, kind, message in cases:
        err = await attach(real, uuid, body, version=version, status=status)
        if message is not None:
            assert err[kind]["message"] == message, body
        else:
            assert kind in err, body
    err = await detach(real, uuid, missing, status=404)
    assert err["itemNotFound"]["message"] == f"Port {missing} is not attached"
    _, err = await call(api, "POST", f"/v2.1/servers/{missing}/os-interface",
                        {"interfaceAttachment": {"net_id": mine}}, token=ALICE, status=404)
    after = ({p.id for p in await ports_of(api, uuid)}, await ips_held(api),
             await actions(real, uuid))
    assert after == before
    assert commands(sim, "attach_interface") == []


async def test_state_guards_and_lock(real):
    api, sim, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.86.0/24")
    body = {"interfaceAttachment": {"net_id": mine}}
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"suspend": None},
               token=ALICE, status=202)
    await run_woken(api, sim)
    err = await attach(real, uuid, body, status=409)
    assert err["conflictingRequest"]["message"] == (
        f"Cannot 'attach_interface' instance {uuid} while it is in vm_state suspended")
    [port_id] = [p.id for p in await ports_of(api, uuid)]
    err = await detach(real, uuid, port_id, status=409)
    assert err["conflictingRequest"]["message"] == (
        f"Cannot 'detach_interface' instance {uuid} while it is in vm_state suspended")
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"resume": None},
               token=ALICE, status=202)
    await run_woken(api, sim)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"os-stop": None},
               token=ALICE, status=202)
    await run_woken(api, sim)
    # stopped is fine (the agent changes the guest's definition)
    att = (await attach(real, uuid, body))["interfaceAttachment"]
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"lock": None}, token=ALICE,
               status=202)
    err = await attach(real, uuid, body, status=409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is locked"
    err = await detach(real, uuid, att["port_id"], status=409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is locked"
    # an admin may act on a locked server
    await detach(real, uuid, att["port_id"], token="admin")
    assert att["port_id"] not in {p.id for p in await ports_of(api, uuid)}
    # another action in progress
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"unlock": None}, token=ALICE,
               status=202)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"os-start": None},
               token=ALICE, status=202)           # not run yet: task_state powering-on
    err = await attach(real, uuid, body, status=409)
    assert "task_state powering-on" in err["conflictingRequest"]["message"]


async def test_agent_failure_gives_the_port_back_and_records_a_fault(real):
    api, sim, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.87.0/24")
    port = (await nq(neutron, "POST", "/ports", {"port": {"network_id": mine}},
                     status=201))["port"]
    before = {p.id for p in await ports_of(api, uuid)}
    held = await ips_held(api)
    sim.fail["host1"] = {"attach_interface": {"error": "no PCI slot left"}}
    err = await attach(real, uuid, {"interfaceAttachment": {"net_id": mine}}, status=500)
    assert err["computeFault"]["message"] == \
        f"Failed to attach network adapter device to {uuid}"
    await attach(real, uuid, {"interfaceAttachment": {"port_id": port["id"]}}, status=500)
    assert {p.id for p in await ports_of(api, uuid)} == before
    assert (await nq(neutron, "GET", f"/ports/{port['id']}", status=200)
            )["port"]["device_id"] == ""
    assert await ips_held(api) == held          # the made port's address is free again
    server = await show(real, uuid)
    assert server["status"] == "ACTIVE"             # not ERROR, as in Nova
    action = await events(real, uuid, "attach_interface")
    assert action["events"][0]["result"] == "Error"
    async with api.cloud.db.read() as conn:
        faults = (await conn.execute(select(t.instance_fault.c.message).where(
            t.instance_fault.c.instance_uuid == uuid))).scalars().all()
    assert f"Failed to attach network adapter device to {uuid}" in faults

    sim.fail["host1"] = {}
    att = (await attach(real, uuid, {"interfaceAttachment": {"net_id": mine}})
           )["interfaceAttachment"]
    sim.fail["host1"] = {"detach_interface": {"error": "guest did not let go"}}
    await detach(real, uuid, att["port_id"])
    assert att["port_id"] in {p.id for p in await ports_of(api, uuid)}   # still there
    assert (await show(real, uuid))["status"] == "ACTIVE"


async def test_attached_ports_travel_with_the_instance(real):
    """A later spawn (rebuild) carries the attached vif; delete frees it."""
    api, sim, neutron = real
    uuid = await boot(real)
    mine = await own_network(neutron, "mine", "192.168.88.0/24")
    att = (await attach(real, uuid, {"interfaceAttachment": {"net_id": mine}})
           )["interfaceAttachment"]
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"rebuild": {
        "imageRef": (await show(real, uuid))["image"]["id"]}}, token=ALICE, status=202)
    await run_woken(api, sim)
    [rebuild] = commands(sim, "rebuild")
    assert [v["port_id"] for v in rebuild["spec"]["network_info"]][-1] == att["port_id"]
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    await run_woken(api, sim)
    assert await ports_of(api, uuid) == []
    assert json.dumps(sorted(await ips_held(api))).count("192.168.88.") == 0


async def test_members_of_the_ports_groups_are_told(real):
    """A port joining or leaving the default group changes the group's member
    set on the host: one security_group_members command, no network_update
    for the other members."""
    _, sim, _ = real
    first = await boot(real)
    second = await boot(real)
    await sim.drain()
    sim.log.clear()
    sim.args.clear()
    att = (await attach(real, first, {"interfaceAttachment": {}}))["interfaceAttachment"]
    address = f"{att['fixed_ips'][0]['ip_address']}/32"
    [update] = [a for (_, op, _), a in zip(sim.log, sim.args)
                if op == "security_group_members"]
    assert address in update["members"]["IPv4"]
    assert ("host1", "network_update", second) not in sim.log
    sim.log.clear()
    sim.args.clear()
    await detach(real, first, att["port_id"])
    await sim.drain()
    [update] = [a for (_, op, _), a in zip(sim.log, sim.args)
                if op == "security_group_members"]
    assert address not in update["members"]["IPv4"] and update["members"]["IPv4"]
    assert ("host1", "network_update", second) not in sim.log
