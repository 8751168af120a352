"""Servers on networks, the compute side: what server create asks the network
service, ports allocated bound to the chosen host in the build step (the
spawn spec's network_info), freed on delete, failure and reschedule; the
addresses of show/detail per microversion, /ips, os-interface; ports_changed.

The first tests use tests/compute/fake_network.py (the contract of
docs/network-design.md) to pin the compute side alone; the last ones run
with the cloud's own network service and its Neutron API.
"""

from __future__ import annotations

import base64
import json

import pytest
import pytest_asyncio
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.web.errors import ApiError
from tests.compute.conftest import IMAGE, IMAGE_ALT, call, sim_cloud
from tests.compute.fake_network import FakeNetworks

pytestmark = pytest.mark.asyncio

ALICE = "alice:p1"


@pytest_asyncio.fixture
async def env(make_api):
    """(api, sim, fake networks): builds run by ``boot`` through the conductor
    with the simulated agents of host1 and host2."""
    api, sim = await sim_cloud(make_api, network=FakeNetworks())
    return api, sim, api.cloud.network


async def run_woken(api, sim) -> None:
    woken, api.woken[:] = list(api.woken), []
    for task_id in woken:
        await sim.run(task_id)


async def boot(env, *, version="2.1", status=202, token=ALICE, run=True, **server):
    api, sim, _ = env
    body = {"server": {"name": "vm", "imageRef": IMAGE, "flavorRef": "1", **server}}
    _, data = await call(api, "POST", "/v2.1/servers", body, token=token, version=version,
                         status=status)
    if status != 202:
        return data
    if run:
        await run_woken(api, sim)
    return data["server"]["id"]


async def show(env, uuid, version="2.1", token=ALICE):
    _, data = await call(env[0], "GET", f"/v2.1/servers/{uuid}", token=token,
                         version=version, status=200)
    return data["server"]


def spawn_specs(sim, uuid):
    return [a["spec"] for a in sim.args if (a.get("spec") or {}).get("uuid") == uuid]


# -- create: what is asked of the network service ----------------------------------------

async def test_auto_networks_give_a_port_bound_to_the_host(env):
    _, sim, net = env
    uuid = await boot(env, version="2.37", networks="auto")
    assert ("validate", "p1", "auto") in net.calls
    [alloc] = [c for c in net.calls if c[0] == "allocate"]
    assert alloc == ("allocate", uuid, "host1", "nova", "auto", ["default"])
    [port] = [p for p in net.ports.values() if p["device_id"] == uuid]
    assert port["host"] == "host1" and port["network_id"] == net.default
    [spec] = spawn_specs(sim, uuid)
    assert [v["port_id"] for v in spec["network_info"]] == [port["id"]]
    assert spec["network_info"][0]["subnets"][0]["ips"] == [port["ip"]]
    assert spec["config_drive"] is None
    server = await show(env, uuid)
    assert server["status"] == "ACTIVE"
    assert server["addresses"] == {"default": [{
        "version": 4, "addr": port["ip"], "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": port["mac"]}]}


async def test_no_networks_before_2_37_is_auto(env):
    _, _, net = env
    uuid = await boot(env)
    assert ("validate", "p1", "auto") in net.calls
    assert [c[4] for c in net.calls if c[0] == "allocate"] == ["auto"]
    assert [p["device_id"] for p in net.ports.values()] == [uuid]


async def test_none_gives_no_ports(env):
    _, sim, net = env
    uuid = await boot(env, version="2.37", networks="none")
    assert net.ports == {}
    assert spawn_specs(sim, uuid)[0]["network_info"] == []
    server = await show(env, uuid, version="2.37")
    assert server["status"] == "ACTIVE" and server["addresses"] == {}


async def test_explicit_network_and_fixed_ip(env):
    _, _, net = env
    mine = net.add_network("mine", "192.168.7", project="p1")
    uuid = await boot(env, networks=[{"uuid": mine, "fixed_ip": "192.168.7.99"},
                                     {"uuid": net.default}],
                      security_groups=[{"name": "web"}, {"name": "default"}])
    [alloc] = [c for c in net.calls if c[0] == "allocate"]
    assert alloc[4] == [{"uuid": mine, "fixed_ip": "192.168.7.99"}, {"uuid": net.default}]
    assert alloc[5] == ["default", "web"]
    addresses = (await show(env, uuid))["addresses"]
    assert list(addresses) == ["mine", "default"]
    assert addresses["mine"][0]["addr"] == "192.168.7.99"


async def test_boot_network_tags_show_on_the_interfaces_from_2_70(env):
    api, _, net = env
    mine = net.add_network("mine", "192.168.8", project="p1")
    uuid = await boot(env, version="2.42", networks=[{"uuid": mine, "tag": "data"},
                                                     {"uuid": net.default}])
    ports = {p["network_id"]: p["id"] for p in net.ports.values() if p["device_id"] == uuid}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface", token=ALICE,
                         version="2.70", status=200)
    assert {a["port_id"]: a["tag"] for a in data["interfaceAttachments"]} == {
        ports[mine]: "data", ports[net.default]: None}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface/{ports[mine]}",
                         token=ALICE, version="2.69", status=200)
    assert "tag" not in data["interfaceAttachment"]


async def test_a_users_port_is_bound_then_given_back_on_delete(env):
    api, sim, net = env
    port_id = net.add_port(net.default, "p1")
    uuid = await boot(env, networks=[{"port": port_id}])
    assert net.ports[port_id]["device_id"] == uuid
    assert net.ports[port_id]["host"] == "host1"
    # Used: a second server cannot have it (Nova's PortInUse, 409).
    err = await boot(env, networks=[{"port": port_id}], status=409)
    assert err["conflictingRequest"]["message"] == f"Port {port_id} is still in use."
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    await run_woken(api, sim)
    assert net.ports[port_id]["device_id"] is None      # unbound, kept
    assert ("deallocate", uuid) in net.calls


async def test_delete_frees_the_ports_after_the_destroy(env):
    api, sim, net = env
    uuid = await boot(env)
    assert len(net.ports) == 1
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    await run_woken(api, sim)
    assert net.ports == {}
    ops = [op for _, op, u in sim.log if u == uuid]
    assert ops == ["spawn", "destroy"]
    assert net.calls[-1] == ("deallocate", uuid)


async def test_network_errors_at_create_change_nothing(env):
    api, _, net = env
    net.add_network("a", "192.168.1", project="p1")
    net.add_network("b", "192.168.2", project="p1")
    err = await boot(env, version="2.37", networks="auto", status=409)
    assert err["conflictingRequest"]["message"] == (
        "Multiple possible networks found, use a Network ID to be more specific.")
    missing = "3f2b6a1c-0000-4000-8000-000000000001"
    err = await boot(env, networks=[{"uuid": missing}], status=400)
    assert err["badRequest"]["message"] == f"Network {missing} could not be found."
    err = await boot(env, networks=[{"uuid": "nope"}], status=400)
    assert err["badRequest"]["message"] == (
        "Bad networks format: network uuid is not in proper format (nope)")
    err = await boot(env, networks=[{"port": missing}], status=400)
    assert err["badRequest"]["message"] == f"Port id {missing} could not be found."
    port_id = net.add_port(net.default, "p1")
    err = await boot(env, networks=[{"port": port_id}], max_count=2, status=400)
    assert err["badRequest"]["message"] == (
        "Failed to launch instances: Unable to launch multiple instances with a single "
        "configured port ID. Please launch your instance one by one with different ports.")
    err = await boot(env, networks=[{"uuid": net.default, "fixed_ip": "10.253.0.50"}],
                     max_count=2, status=400)
    assert err["badRequest"]["message"] == (
        "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip "
        "is specified.")
    err = await boot(env, networks=[{"port": port_id, "fixed_ip": "10.253.0.50"}],
                     status=400)
    assert "cannot be used with port" in err["badRequest"]["message"]
    async with api.cloud.db.read() as conn:
        assert (await conn.execute(select(t.instance))).all() == []
    assert not [c for c in net.calls if c[0] == "allocate"]


# -- the build flow ---------------------------------------------------------------------

async def test_a_failed_build_frees_its_ports(env):
    _, sim, net = env
    sim.fail["host1"] = {"spawn": {"retryable": False, "error": "boom"}}
    uuid = await boot(env)
    inst = await sim.instance(uuid)
    assert inst.vm_state == "error"
    assert net.ports == {}
    assert (await show(env, uuid))["addresses"] == {}


async def test_a_reschedule_allocates_again_on_the_next_host(env):
    _, sim, net = env
    await sim.add_host("host2", vcpus=2)      # host1 (more free) is tried first
    sim.fail["host1"] = {"spawn": {"retryable": True, "error": "try elsewhere"}}
    uuid = await boot(env)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("active", "host2")
    hosts = [c[2] for c in net.calls if c[0] == "allocate"]
    assert hosts == ["host1", "host2"]
    [port] = net.ports.values()
    assert (port["device_id"], port["host"]) == (uuid, "host2")
    first, second = spawn_specs(sim, uuid)
    assert first["network_info"][0]["port_id"] != second["network_info"][0]["port_id"]


async def test_an_allocation_error_fails_the_build_without_a_reschedule(env):
    _, sim, net = env
    await sim.add_host("host2")
    net.fail_allocate = ApiError(409, "No more IP addresses available on network x.")
    uuid = await boot(env)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("error", None, None)
    [fault] = await sim.faults(uuid)
    assert fault.message == (f"Build of instance {uuid} aborted: Failed to allocate the "
                             "network(s), not rescheduling.")
    assert "No more IP addresses" in fault.details
    assert not [op for _, op, u in sim.log if u == uuid]
    assert await sim.usage(uuid) == {}


async def test_rebuild_keeps_the_ports(env):
    api, sim, net = env
    uuid = await boot(env)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action",
               {"rebuild": {"imageRef": IMAGE_ALT}}, token=ALICE, status=202)
    await run_woken(api, sim)
    spawn, rebuild = spawn_specs(sim, uuid)
    assert rebuild["image"]["id"] == IMAGE_ALT
    assert rebuild["network_info"] == spawn["network_info"] != []
    assert [c[0] for c in net.calls].count("allocate") == 1


async def test_config_drive_files_in_the_spawn_spec(env):
    _, sim, _ = env
    uuid = await boot(env, config_drive=True, metadata={"role": "db"})
    [spec] = spawn_specs(sim, uuid)
    files = spec["config_drive"]["files"]
    meta = json.loads(base64.b64decode(files["openstack/latest/meta_data.json"]))
    assert meta["uuid"] == uuid and meta["meta"] == {"role": "db"}
    network_data = json.loads(base64.b64decode(files["openstack/latest/network_data.json"]))
    assert network_data["links"][0]["ethernet_mac_address"] == \
        spec["network_info"][0]["mac"]
    assert (await show(env, uuid))["config_drive"] == "True"


async def test_force_config_drive(make_api):
    api, sim = await sim_cloud(make_api, {"compute": {"force_config_drive": True}},
                               network=FakeNetworks())
    uuid = await boot((api, sim, api.cloud.network))
    [spec] = spawn_specs(sim, uuid)
    assert "openstack/latest/meta_data.json" in spec["config_drive"]["files"]


# -- views ------------------------------------------------------------------------------

async def test_addresses_per_microversion_and_in_lists(env):
    api, _, net = env
    first = await boot(env, name="one")
    second = await boot(env, name="two")
    building = await boot(env, name="three", run=False)
    _, data = await call(api, "GET", "/v2.1/servers/detail", token=ALICE, status=200)
    by_id = {s["id"]: s["addresses"] for s in data["servers"]}
    ips = {p["device_id"]: p["ip"] for p in net.ports.values()}
    assert by_id[first]["default"][0]["addr"] == ips[first]
    assert by_id[second]["default"][0]["addr"] == ips[second]
    assert by_id[building] == {}                    # hidden while building (Nova)
    # PUT answers without the extended address keys before 2.75, with them after.
    for version, keys in (("2.1", {"version", "addr"}),
                          ("2.75", {"version", "addr", "OS-EXT-IPS:type",
                                    "OS-EXT-IPS-MAC:mac_addr"})):
        _, data = await call(api, "PUT", f"/v2.1/servers/{first}",
                             {"server": {"name": "renamed"}}, token=ALICE, version=version,
                             status=200)
        assert set(data["server"]["addresses"]["default"][0]) == keys
    # The ip filter matches the start of a fixed address.
    _, data = await call(api, "GET", f"/v2.1/servers?ip={ips[second]}", token=ALICE,
                         status=200)
    assert [s["id"] for s in data["servers"]] == [second]
    _, data = await call(api, "GET", "/v2.1/servers?ip=192.0.2.", token=ALICE, status=200)
    assert data["servers"] == []


async def test_ips_and_interfaces(env):
    api, _, net = env
    uuid = await boot(env)
    [port] = net.ports.values()
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/ips", token=ALICE, status=200)
    assert data == {"addresses": {"default": [{"version": 4, "addr": port["ip"]}]}}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/ips/default", token=ALICE,
                         status=200)
    assert data == {"default": [{"version": 4, "addr": port["ip"]}]}
    _, err = await call(api, "GET", f"/v2.1/servers/{uuid}/ips/other", token=ALICE,
                        status=404)
    assert err["itemNotFound"]["message"] == "Instance is not a member of specified network"
    await call(api, "GET", f"/v2.1/servers/{uuid}/ips", token="bob:p2", status=404)

    expected = {"net_id": net.default, "port_id": port["id"], "mac_addr": port["mac"],
                "port_state": "ACTIVE", "fixed_ips": [
                    {"subnet_id": net.networks[net.default]["subnet"],
                     "ip_address": port["ip"]}]}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface", token=ALICE,
                         status=200)
    assert data == {"interfaceAttachments": [expected]}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface/{port['id']}",
                         token=ALICE, version="2.70", status=200)
    assert data == {"interfaceAttachment": {**expected, "tag": None}}
    other = "3f2b6a1c-0000-4000-8000-000000000002"
    _, err = await call(api, "GET", f"/v2.1/servers/{uuid}/os-interface/{other}",
                        token=ALICE, status=404)
    assert err["itemNotFound"]["message"] == f"Port id {other} could not be found."


# -- ports_changed ----------------------------------------------------------------------

async def test_ports_changed_enqueues_network_update_per_placed_instance(env):
    api, sim, net = env
    placed = await boot(env)
    unplaced = await boot(env, run=False)
    async with api.cloud.db.write() as conn:
        await api.cloud.compute.ports_changed(conn, [placed, unplaced, placed])
    cmd = t.agent_command
    async with api.cloud.db.read() as conn:
        rows = (await conn.execute(select(cmd).where(cmd.c.op == "network_update"))).all()
    [row] = rows
    assert (row.host, row.instance_uuid, row.task_id) == ("host1", placed, None)
    args = json.loads(row.args)
    assert args["uuid"] == placed
    assert [v["port_id"] for v in args["network_info"]] == \
        [p["id"] for p in net.ports.values() if p["device_id"] == placed]
    # The agent answers; nothing waits on it.
    assert await sim.drain() == 1
    assert (await sim.instance(placed)).vm_state == "active"


# -- with the real network service (cloudd.services.network) ----------------------------

async def nq(neutron, method, path, body=None, *, token=ALICE, status=None):
    hdrs = {"X-Auth-Token": token}
    if token != "admin":
        hdrs["X-Roles"] = "member,reader"
    resp = await neutron.request(method, "/v2.0" + path, json=body, headers=hdrs)
    data = await resp.json() if resp.content_type == "application/json" else None
    if status is not None:
        assert resp.status == status, (resp.status, data)
    return data


async def own_network(neutron, name, cidr, token=ALICE) -> str:
    net = (await nq(neutron, "POST", "/networks", {"network": {"name": name}}, token=token,
                    status=201))["network"]
    await nq(neutron, "POST", "/subnets", {"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4}}, token=token, status=201)
    return net["id"]


async def ports_of(api, uuid):
    async with api.cloud.db.read() as conn:
        return (await conn.execute(select(t.port).where(t.port.c.device_id == uuid))).all()


async def ips_held(api):
    async with api.cloud.db.read() as conn:
        return {r.ip_address for r in await conn.execute(select(t.ip_allocation))}


async def test_real_auto_gets_the_default_network_then_the_projects_own(real):
    api, sim, neutron = real
    uuid = await boot(real, version="2.37", networks="auto")
    [port] = await ports_of(api, uuid)
    assert (port.binding_host_id, port.device_owner) == ("host1", "compute:nova")
    server = await show(real, uuid)
    [addr] = server["addresses"]["default"]
    assert addr["addr"].startswith("10.253.0.") and addr["version"] == 4
    assert addr["OS-EXT-IPS-MAC:mac_addr"] == port.mac_address
    [spec] = spawn_specs(sim, uuid)
    assert spec["network_info"][0]["port_id"] == port.id
    # Its new port changed its default group's members, but the spawn carries
    # the rules: no network_update ahead of it.
    assert [op for _, op, u in sim.log if u == uuid] == ["spawn"]
    assert spec["network_info"][0]["subnets"][0]["ips"] == [addr["addr"]]

    mine = await own_network(neutron, "mine", "192.168.50.0/24")
    second = await boot(real, version="2.37", networks="auto")
    assert list((await show(real, second))["addresses"]) == ["mine"]
    assert (await ports_of(api, second))[0].network_id == mine
    await own_network(neutron, "other", "192.168.51.0/24")
    err = await boot(real, version="2.37", networks="auto", status=409)
    assert err["conflictingRequest"]["message"] == (
        "Multiple possible networks found, use a Network ID to be more specific.")


async def test_real_fixed_ip_port_and_delete_frees_them(real):
    api, sim, neutron = real
    mine = await own_network(neutron, "mine", "192.168.60.0/24")
    first = await boot(real, networks=[{"uuid": mine, "fixed_ip": "192.168.60.77"}])
    assert (await show(real, first))["addresses"]["mine"][0]["addr"] == "192.168.60.77"
    err = await boot(real, networks=[{"uuid": mine, "fixed_ip": "192.168.60.77"}],
                     status=400)
    assert err["badRequest"]["message"] == (
        f"Fixed IP address 192.168.60.77 is already in use on instance {first}.")
    err = await boot(real, security_groups=[{"name": "nope"}], status=400)
    assert err["badRequest"]["message"] == "Security group nope not found."

    port = (await nq(neutron, "POST", "/ports", {"port": {"network_id": mine}},
                     status=201))["port"]
    second = await boot(real, networks=[{"port": port["id"]}])
    [bound] = await ports_of(api, second)
    assert (bound.id, bound.binding_host_id) == (port["id"], "host1")
    err = await boot(real, networks=[{"port": port["id"]}], status=409)
    assert err["conflictingRequest"]["message"] == f"Port {port['id']} is still in use."
    _, data = await call(api, "GET", f"/v2.1/servers/{second}/os-interface", token=ALICE,
                         status=200)
    [att] = data["interfaceAttachments"]
    assert (att["port_id"], att["net_id"], att["mac_addr"]) == \
        (port["id"], mine, port["mac_address"])
    assert att["fixed_ips"] == [{"subnet_id": port["fixed_ips"][0]["subnet_id"],
                                 "ip_address": port["fixed_ips"][0]["ip_address"]}]
    _, err = await call(api, "GET", f"/v2.1/servers/{first}/os-interface/{port['id']}",
                        token=ALICE, status=404)
    assert err["itemNotFound"]["message"] == \
        f"Instance {first} does not have a port with id {port['id']}"

    held = await ips_held(api)
    assert {"192.168.60.77", port["fixed_ips"][0]["ip_address"]} <= held
    for uuid in (first, second):
        await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    await run_woken(api, sim)
    assert await ports_of(api, first) == []
    assert "192.168.60.77" not in await ips_held(api)     # freed with its port
    kept = (await nq(neutron, "GET", f"/ports/{port['id']}", status=200))["port"]
    assert kept["device_id"] == "" and kept["fixed_ips"] == port["fixed_ips"]
    # The address is free again for a new server.
    third = await boot(real, networks=[{"uuid": mine, "fixed_ip": "192.168.60.77"}])
    assert (await sim.instance(third)).vm_state == "active"


async def test_real_rule_change_sends_network_update_to_the_host(real):
    api, sim, neutron = real
    uuid = await boot(real)
    await sim.drain()
    group = (await nq(neutron, "GET", "/security-groups?name=default", status=200)
             )["security_groups"][0]
    await nq(neutron, "POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "icmp"}},
        status=201)
    cmd = t.agent_command
    async with api.cloud.db.read() as conn:
        rows = (await conn.execute(select(cmd).where(
            cmd.c.op == "network_update", cmd.c.state == "pending"))).all()
    assert [(r.host, r.instance_uuid) for r in rows] == [("host1", uuid)]
    rules = json.loads(rows[0].args)["network_info"][0]["security_group_rules"]
    assert any(r["protocol"] == "icmp" and r["direction"] == "ingress" for r in rules)


async def test_os_networks_lists_the_networks_a_project_sees(real):
    api, _, neutron = real
    mine = await own_network(neutron, "mine", "192.168.70.0/24")
    await own_network(neutron, "bobs", "192.168.71.0/24", token="bob:p2")
    _, data = await call(api, "GET", "/v2.1/os-networks", token=ALICE, status=200)
    labels = {n["label"]: n for n in data["networks"]}
    assert set(labels) == {"default", "mine"}
    assert labels["mine"]["id"] == mine and labels["mine"]["cidr"] is None
    assert "mtu" not in labels["mine"]
    _, data = await call(api, "GET", f"/v2.1/os-networks/{mine}", token=ALICE, status=200)
    assert data["network"]["label"] == "mine"
    _, data = await call(api, "GET", "/v2.1/os-networks", status=200)      # admin: all
    assert {n["label"] for n in data["networks"]} == {"default", "mine", "bobs"}
    assert "mtu" in data["networks"][0]
    _, err = await call(api, "GET", "/v2.1/os-networks/" + "0" * 8 + "-0000-4000-8000-"
                        + "0" * 12, token=ALICE, status=404)
    assert err["itemNotFound"]["message"] == "Network not found"
    await call(api, "GET", "/v2.1/os-networks", version="2.36", status=404)


async def test_security_group_proxy_and_a_servers_groups(real):
    api, sim, _ = real
    _, made = await call(api, "POST", "/v2.1/os-security-groups", {"security_group": {
        "name": "web", "description": "web servers"}}, token=ALICE, status=200)
    group = made["security_group"]
    assert (group["name"], group["tenant_id"], group["rules"]) == ("web", "p1", [])
    await call(api, "POST", "/v2.1/os-security-groups", {"security_group": {
        "name": "admins", "description": ""}}, status=200)
    _, mine = await call(api, "GET", "/v2.1/os-security-groups?all_tenants=true",
                         token=ALICE, status=200)
    assert {g["name"] for g in mine["security_groups"]} == {"default", "web"}
    default = next(g for g in mine["security_groups"] if g["name"] == "default")
    assert {(r["ip_protocol"], r["group"]["name"]) for r in default["rules"]} == \
        {(None, "default")}                             # ingress from its members only
    _, every = await call(api, "GET", "/v2.1/os-security-groups?all_tenants=true",
                          status=200)
    assert {"web", "admins"} <= {g["name"] for g in every["security_groups"]}
    _, shown = await call(api, "GET", f"/v2.1/os-security-groups/{group['id']}",
                          token=ALICE, status=200)
    assert shown["security_group"] == group

    uuid = await boot(real, security_groups=[{"name": "web"}])
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-security-groups",
                         token=ALICE, status=200)
    assert [g["name"] for g in data["security_groups"]] == ["web"]
    _, err = await call(api, "DELETE", f"/v2.1/os-security-groups/{group['id']}",
                        token=ALICE, status=400)
    assert err["badRequest"]["message"] == f"Security Group {group['id']} in use."
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    await run_woken(api, sim)
    await call(api, "DELETE", f"/v2.1/os-security-groups/{group['id']}", token=ALICE,
               status=202)
    _, err = await call(api, "GET", f"/v2.1/os-security-groups/{group['id']}", token=ALICE,
                        status=404)
    assert err["itemNotFound"]["message"] == f"Security group {group['id']} not found."
    await call(api, "GET", "/v2.1/os-security-groups", token=ALICE, version="2.36",
               status=404)


async def test_inject_network_info_password_and_request_id(real):
    api, sim, _ = real
    uuid = await boot(real)
    resp, _ = await call(api, "POST", f"/v2.1/servers/{uuid}/action",
                         {"injectNetworkInfo": None}, status=202)
    assert resp.headers["x-compute-request-id"] == resp.headers["x-openstack-request-id"]
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"injectNetworkInfo": None},
               token=ALICE, status=403)
    assert await sim.drain() == 1
    assert sim.log[-1] == ("host1", "network_update", uuid)
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-server-password",
                         token=ALICE, status=200)
    assert data == {"password": ""}
    await call(api, "DELETE", f"/v2.1/servers/{uuid}/os-server-password", token=ALICE,
               status=204)
    await call(api, "GET", f"/v2.1/servers/{uuid}/os-server-password", token="bob:p2",
               status=404)


async def test_add_and_remove_security_group_change_the_ports(real):
    api, sim, _ = real
    uuid = await boot(real)
    await sim.drain()
    _, made = await call(api, "POST", "/v2.1/os-security-groups", {"security_group": {
        "name": "web", "description": ""}}, token=ALICE, status=200)
    web = made["security_group"]["id"]
    path = f"/v2.1/servers/{uuid}"

    async def groups():
        _, data = await call(api, "GET", path + "/os-security-groups", token=ALICE,
                             status=200)
        return sorted(g["name"] for g in data["security_groups"])

    await call(api, "POST", path + "/action", {"addSecurityGroup": {"name": "web"}},
               token=ALICE, status=202)
    assert await groups() == ["default", "web"]
    assert await sim.drain() == 1 and sim.log[-1] == ("host1", "network_update", uuid)
    await call(api, "POST", path + "/action", {"removeSecurityGroup": {"name": "default"}},
               token=ALICE, status=202)
    assert await groups() == ["web"]
    _, body = await call(api, "GET", path, token=ALICE, status=200)
    assert body["server"]["security_groups"] == [{"name": "web"}]
    async with api.cloud.db.read() as conn:
        bound = (await conn.execute(select(t.port_security_group.c.security_group_id)
                                    .select_from(t.port_security_group.join(
                                        t.port, t.port.c.id == t.port_security_group.c.port_id))
                                    .where(t.port.c.device_id == uuid))).scalars().all()
    assert bound == [web]


async def test_ports_follow_a_resize_to_another_host_and_its_revert(env):
    api, sim, net = env
    uuid = await boot(env)
    await sim.add_host("host2", memory_mb=8192)       # the RAM weigher prefers it
    [port] = [p for p in net.ports.values() if p["device_id"] == uuid]
    assert port["host"] == "host1"
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"resize": {"flavorRef": "2"}},
               token=ALICE, status=202)
    await run_woken(api, sim)
    assert (await sim.instance(uuid)).host == "host2"
    assert port["host"] == "host2" and ("bind", uuid, "host2") in net.calls
    spawn, moved = spawn_specs(sim, uuid)
    assert moved["network_info"] == spawn["network_info"]      # the same ports
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"revertResize": None},
               token=ALICE, status=202)
    await run_woken(api, sim)
    assert (await sim.instance(uuid)).host == "host1"
    assert port["host"] == "host1" and net.calls[-1] == ("bind", uuid, "host1")


async def test_a_failed_resize_to_another_host_binds_the_ports_back(env):
    api, sim, net = env
    uuid = await boot(env)
    await sim.add_host("host2", memory_mb=8192)
    sim.fail["host2"] = {"spawn": {"error": "no room after all"}}
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"resize": {"flavorRef": "2"}},
               token=ALICE, status=202)
    await run_woken(api, sim)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("error", "host1")
    [port] = [p for p in net.ports.values() if p["device_id"] == uuid]
    assert port["host"] == "host1"
    assert [c for c in net.calls if c[0] == "bind"] == [("bind", uuid, "host2"),
                                                        ("bind", uuid, "host1")]


async def test_real_ports_are_bound_to_the_resize_destination_then_back(real):
    api, sim, _ = real
    uuid = await boot(real)
    await sim.add_host("host2", memory_mb=8192)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"resize": {"flavorRef": "2"}},
               token=ALICE, status=202)
    await run_woken(api, sim)
    [port] = await ports_of(api, uuid)
    assert (port.binding_host_id, port.revision_number) == ("host2", 1)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"revertResize": None},
               token=ALICE, status=202)
    await run_woken(api, sim)
    [port] = await ports_of(api, uuid)
    assert (port.binding_host_id, port.revision_number) == ("host1", 2)
