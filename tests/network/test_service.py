"""The in-process NetworkService (the contract compute builds on): validation
with Nova's messages, allocation and release of ports and addresses, vifs."""

from __future__ import annotations

import pytest

from cloudd.web.errors import ApiError
from tests.network.conftest import call, network, port, subnet

pytestmark = pytest.mark.asyncio


async def _alloc(api, uuid="inst-1", project="p1", host="h1", requested="auto",
                 groups=("default",)):
    async with api.cloud.db.write() as conn:
        return await api.cloud.network.allocate_for_instance(
            conn, instance_uuid=uuid, project_id=project, host=host, zone="nova",
            requested=requested, security_groups=list(groups))


async def _validate(api, requested, project="p1"):
    async with api.cloud.db.read() as conn:
        await api.cloud.network.validate_requested(conn, project, requested)


async def _ports_of(api, device_id, token="admin"):
    _, body = await call(api, "GET", f"/v2.0/ports?device_id={device_id}", token=token)
    return body["ports"]


async def test_auto_uses_the_default_network_and_vif_shape(api):
    [vif] = await _alloc(api)
    assert vif["network_name"] == "default" and vif["network_type"] == "local"
    assert vif["bridge"] == f"cdbr-{vif['network_id'][:10]}"
    assert vif["tap"] == f"tap{vif['port_id'][:11]}"
    assert vif["host_address"] == "10.253.0.1/24" and vif["nat"] is True
    assert vif["mtu"] == 1500 and vif["mac"].startswith("fa:16:3e:")
    [sub] = vif["subnets"]
    assert sub["cidr"] == "10.253.0.0/24" and sub["ips"] == ["10.253.0.2"]
    assert sub["gateway_ip"] == "10.253.0.1" and sub["ip_version"] == 4
    rules = {(r["direction"], r["ethertype"]): r for r in vif["security_group_rules"]}
    assert rules[("egress", "IPv4")]["remote_ip_prefixes"] == ["0.0.0.0/0"]
    # the default group's own-members rule names the group (an older agent
    # reads no prefixes: it matches nothing); the members travel beside it
    [p] = await _ports_of(api, "inst-1")
    gid = p["security_groups"][0]
    assert rules[("ingress", "IPv4")]["remote_group_id"] == gid
    assert rules[("ingress", "IPv4")]["remote_ip_prefixes"] == []
    assert set(vif["security_group_members"]) == {gid}
    first = vif["security_group_members"][gid]
    assert (first["IPv4"], first["IPv6"]) == (["10.253.0.2/32"], [])
    assert p["device_owner"] == "compute:nova" and p["binding:host_id"] == "h1"
    assert p["status"] == "ACTIVE" and p["project_id"] == "p1"
    # a second member of the default group shows in the first one's rules
    await _alloc(api, uuid="inst-2")
    async with api.cloud.db.read() as conn:
        vifs = await api.cloud.network.vifs_for_instances(conn, ["inst-1", "inst-2", "x"])
        members = await api.cloud.network.instances_for_security_group(
            conn, p["security_groups"][0])
    assert vifs["x"] == []
    now = vifs["inst-1"][0]["security_group_members"][gid]
    assert now["IPv4"] == ["10.253.0.2/32", "10.253.0.3/32"]
    assert now["version"] > first["version"]            # the agent keeps the newest
    assert members == [("inst-1", "h1"), ("inst-2", "h1")]


async def test_members_of_a_dual_stack_group_are_host_prefixes_of_each_version(api):
    net = await network(api, token="u1:p1", name="dual")
    await subnet(api, net["id"], "192.168.9.0/24", token="u1:p1")
    await subnet(api, net["id"], "fd00:9::/64", token="u1:p1")
    # written out long: the member set carries the canonical form
    [vif] = await _alloc(api, requested=[{"uuid": net["id"],
                                          "fixed_ip": "fd00:9:0:0:0:0:0:0010"}])
    [addr6] = [ip for s in vif["subnets"] for ip in s["ips"]]
    assert addr6 == "fd00:9::10"
    await _alloc(api, uuid="inst-2", requested=[{"uuid": net["id"]}])
    async with api.cloud.db.read() as conn:
        [vif] = (await api.cloud.network.vifs_for_instances(conn, ["inst-1"]))["inst-1"]
    [members] = vif["security_group_members"].values()
    assert members["IPv6"][0] == "fd00:9::10/128" and len(members["IPv6"]) == 2
    assert all(m.endswith("/128") for m in members["IPv6"])
    assert members["IPv4"] == ["192.168.9.2/32"]


async def test_deallocate_deletes_made_ports_and_unbinds_given_ones(api):
    net = await network(api, token="u1:p1", name="mine")
    await subnet(api, net["id"], "192.168.7.0/24", token="u1:p1")
    given = await port(api, net["id"], token="u1:p1")
    vifs = await _alloc(api, requested=[{"uuid": net["id"], "fixed_ip": "192.168.7.99"},
                                        {"port": given["id"]}])
    assert vifs[1]["port_id"] == given["id"]
    assert vifs[0]["subnets"][0]["ips"] == ["192.168.7.99"]
    async with api.cloud.db.read() as conn:
        again = await api.cloud.network.vifs_for_instances(conn, ["inst-1"])
    def unversioned(vifs):
        for v in vifs:
            for m in v["security_group_members"].values():
                m.pop("version", None)
        return vifs

    assert unversioned(again["inst-1"]) == unversioned(vifs)     # in the order asked for
    async with api.cloud.db.write() as conn:
        await api.cloud.network.deallocate_for_instance(conn, "inst-1")
        await api.cloud.network.deallocate_for_instance(conn, "inst-1")   # idempotent
    _, body = await call(api, "GET", f"/v2.0/ports/{given['id']}", token="u1:p1",
                         status=200)
    assert body["port"]["device_id"] == "" and body["port"]["status"] == "DOWN"
    assert await _ports_of(api, "inst-1") == []
    _, body = await call(api, "GET", "/v2.0/ports?fixed_ips=ip_address%3D192.168.7.99",
                         token="u1:p1")
    assert body["ports"] == []                      # the address is free again


async def test_validate_requested_with_novas_errors(api):
    await _validate(api, "auto")
    await _validate(api, "none")
    mine = await network(api, token="u1:p1", name="a")
    cases = [
        ([{"uuid": mine["id"]}], 400, f"Network {mine['id']} requires a subnet"),
        ([{"uuid": "6a2d7c0e-0000-4000-8000-000000000000"}], 400,
         "Network 6a2d7c0e-0000-4000-8000-000000000000 could not be found."),
        ([{"port": "6a2d7c0e-0000-4000-8000-000000000000"}], 400,
         "Port id 6a2d7c0e-0000-4000-8000-000000000000 could not be found."),
    ]
    for requested, status, text in cases:
        with pytest.raises(ApiError) as err:
            await _validate(api, requested)
        assert err.value.status == status and text in err.value.message
    await subnet(api, mine["id"], "192.168.1.0/24", token="u1:p1")
    with pytest.raises(ApiError) as err:
        await _validate(api, [{"uuid": mine["id"], "fixed_ip": "10.0.0.1"}])
    assert err.value.status == 400
    p = await port(api, mine["id"], token="u1:p1")
    await _alloc(api, requested=[{"port": p["id"]}])
    with pytest.raises(ApiError) as err:
        await _validate(api, [{"port": p["id"]}])
    assert (err.value.status, err.value.message) == (409, f"Port {p['id']} is still in use.")
    with pytest.raises(ApiError) as err:
        await _validate(api, [{"uuid": mine["id"], "fixed_ip": p["fixed_ips"][0][
            "ip_address"]}])
    assert err.value.status == 400 and "already in use on instance inst-1" in \
        err.value.message
    # auto: the project's own network, and with two of its own it is ambiguous
    [vif] = await _alloc(api, uuid="inst-9")
    assert vif["network_name"] == "a"
    other = await network(api, token="u1:p1", name="b")
    await subnet(api, other["id"], "192.168.2.0/24", token="u1:p1")
    with pytest.raises(ApiError) as err:
        await _validate(api, "auto")
    assert err.value.status == 409 and "Multiple possible networks" in err.value.message
    # another project's network is not found
    with pytest.raises(ApiError) as err:
        await _validate(api, [{"uuid": mine["id"]}], project="p2")
    assert err.value.status == 400


async def test_security_group_names(api):
    async with api.cloud.db.write() as conn:
        await api.cloud.network.validate_security_groups(conn, "p1", ["default"])
        with pytest.raises(ApiError) as err:
            await api.cloud.network.validate_security_groups(conn, "p1", ["nope"])
    assert err.value.status == 400
    _, body = await call(api, "POST", "/v2.0/security-groups",
                         {"security_group": {"name": "web"}}, token="u1:p1", status=201)
    web = body["security_group"]["id"]
    [vif] = await _alloc(api, groups=["web"])
    [p] = await _ports_of(api, "inst-1")
    assert p["security_groups"] == [web]
    assert {r["direction"] for r in vif["security_group_rules"]} == {"egress"}


async def test_flat_network_gets_a_dhcp_port_per_host(api):
    net = await network(api, shared=True, **{"provider:network_type": "flat",
                                             "provider:physical_network": "physnet1"})
    await subnet(api, net["id"], "172.16.0.0/24")
    [vif] = await _alloc(api, requested=[{"uuid": net["id"]}])
    assert vif["network_type"] == "flat" and vif["nat"] is False
    assert vif["physical_network"] == "physnet1"
    _, body = await call(api, "GET", "/v2.0/ports?device_owner=network:dhcp", status=200)
    [dhcp] = body["ports"]
    assert dhcp["binding:host_id"] == "h1"
    assert vif["host_address"] == f"{dhcp['fixed_ips'][0]['ip_address']}/24"
    await _alloc(api, uuid="inst-2", requested=[{"uuid": net["id"]}])
    _, body = await call(api, "GET", "/v2.0/ports?device_owner=network:dhcp", status=200)
    assert len(body["ports"]) == 1                  # one per host


async def test_concurrent_allocations_get_distinct_addresses(api):
    """Ports made at once on one subnet (and a project's first default group
    made at once) never share an address or make two default groups."""
    import asyncio
    net = await network(api, token="u1:p1")
    await subnet(api, net["id"], "10.9.0.0/24", token="u1:p1")

    async def one(i):
        return await _alloc(api, uuid=f"c-{i}", project="p1",
                            requested=[{"uuid": net["id"]}])
    results = await asyncio.gather(*(one(i) for i in range(8)))
    ips = [vifs[0]["subnets"][0]["ips"][0] for vifs in results]
    assert len(set(ips)) == 8
    firsts = await asyncio.gather(*(_alloc(api, uuid=f"d-{i}", project="p9")
                                    for i in range(4)))
    assert len({tuple(v[0]["subnets"][0]["ips"]) for v in firsts}) == 4
    _, body = await call(api, "GET", "/v2.0/security-groups?project_id=p9", status=200)
    assert [g["name"] for g in body["security_groups"]] == ["default"]
