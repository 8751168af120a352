"""Subnets (IPv4 and IPv6, pools, gateway, DNS, routes, overlap) and ports
(fixed IPs allocated and released, MACs, binding, port security)."""

from __future__ import annotations

import re

import pytest

from tests.network.conftest import call, error_of, network, port, subnet

pytestmark = pytest.mark.asyncio


async def test_subnet_defaults_and_checks(api):
    net = await network(api, token="u1:p1")
    sub = await subnet(api, net["id"], "10.5.0.0/24", token="u1:p1",
                       dns_nameservers=["8.8.8.8"],
                       host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.5.0.9"}])
    assert sub["gateway_ip"] == "10.5.0.1" and sub["enable_dhcp"] is True
    assert sub["allocation_pools"] == [{"start": "10.5.0.2", "end": "10.5.0.254"}]
    assert sub["dns_nameservers"] == ["8.8.8.8"]
    assert sub["host_routes"] == [{"destination": "10.9.0.0/16", "nexthop": "10.5.0.9"}]
    net_id = net["id"]
    cases = [
        ({"cidr": "10.5.0.128/25"}, 400, "InvalidInput", "overlaps with another subnet"),
        ({"cidr": "10.6.0.1/24"}, 400, "HTTPBadRequest", "'10.6.0.0/24' is recommended"),
        ({"cidr": "10.6.0.0/24", "ip_version": 6}, 400, "InvalidInput", "ip_version"),
        ({"cidr": "10.6.0.0/24", "ip_version": 5}, 400, "HTTPBadRequest", "[4, 6]"),
        ({"cidr": "10.6.0.0/24", "allocation_pools": [{"start": "10.6.0.10",
                                                       "end": "10.6.1.5"}]},
         400, "OutOfBoundsAllocationPool", "spans beyond the subnet cidr"),
        ({"cidr": "10.6.0.0/24", "allocation_pools": [
            {"start": "10.6.0.10", "end": "10.6.0.20"},
            {"start": "10.6.0.15", "end": "10.6.0.30"}]},
         400, "OverlappingAllocationPools", "overlapping allocation pools"),
        ({"cidr": "10.6.0.0/24", "gateway_ip": "10.6.0.15",
          "allocation_pools": [{"start": "10.6.0.10", "end": "10.6.0.20"}]},
         409, "GatewayConflictWithAllocationPools", "conflicts with allocation pool"),
        ({"cidr": "10.6.0.0/24", "dns_nameservers": ["1.1.1.1", "1.1.1.1"]},
         400, "HTTPBadRequest", "Duplicate nameserver"),
        ({"cidr": "10.6.0.0/24", "ipv6_address_mode": "slaac"}, 400, "InvalidInput",
         "not valid when ip_version is 4"),
    ]
    for attrs, status, kind, text in cases:
        attrs.setdefault("ip_version", 4)
        got_kind, msg = await error_of(api, "POST", "/v2.0/subnets",
                                       {"subnet": {"network_id": net_id, **attrs}},
                                       token="u1:p1", status=status)
        assert (got_kind, text in msg) == (kind, True), (attrs, got_kind, msg)
    _, body = await call(api, "GET", f"/v2.0/subnets?network_id={net_id}", token="u1:p1")
    assert len(body["subnets"]) == 1
    # no gateway: the pool takes the whole range
    net2 = await network(api, token="u1:p1")
    sub2 = await subnet(api, net2["id"], "10.7.0.0/29", token="u1:p1", gateway_ip=None)
    assert sub2["gateway_ip"] is None
    assert sub2["allocation_pools"] == [{"start": "10.7.0.1", "end": "10.7.0.6"}]


async def test_subnet_update_and_read_only(api):
    net = await network(api, token="u1:p1")
    sub = await subnet(api, net["id"], "10.5.0.0/24", token="u1:p1")
    _, body = await call(api, "PUT", f"/v2.0/subnets/{sub['id']}", {"subnet": {
        "name": "s", "dns_nameservers": ["9.9.9.9"], "enable_dhcp": False}},
        token="u1:p1", status=200)
    assert body["subnet"]["dns_nameservers"] == ["9.9.9.9"]
    assert body["subnet"]["enable_dhcp"] is False
    _kind, msg = await error_of(api, "PUT", f"/v2.0/subnets/{sub['id']}",
                               {"subnet": {"cidr": "10.8.0.0/24"}}, token="u1:p1",
                               status=400)
    assert msg == "Cannot update read-only attribute cidr"


async def test_ipv6_subnets(api):
    net = await network(api, token="u1:p1")
    v4 = await subnet(api, net["id"], "10.5.0.0/24", token="u1:p1")
    v6 = await subnet(api, net["id"], "fd00:1::/64", token="u1:p1",
                      ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    assert v6["gateway_ip"] == "fd00:1::1"
    assert v6["allocation_pools"] == [{"start": "fd00:1::2",
                                       "end": "fd00:1::ffff:ffff:ffff:ffff"}]
    p = await port(api, net["id"], token="u1:p1")
    ips = {i["subnet_id"]: i["ip_address"] for i in p["fixed_ips"]}
    assert ips[v4["id"]] == "10.5.0.2"
    # SLAAC: EUI-64 from the MAC
    mac = p["mac_address"].split(":")
    first = f"{int(mac[0], 16) ^ 2:02x}{mac[1]}"
    assert ips[v6["id"]].startswith("fd00:1::") and first.lstrip("0") in ips[v6["id"]]
    _kind, msg = await error_of(api, "POST", "/v2.0/subnets", {"subnet": {
        "network_id": net["id"], "cidr": "fd00:2::/80", "ip_version": 6,
        "ipv6_address_mode": "slaac"}}, token="u1:p1", status=400)
    assert "requires the prefix to be /64" in msg
    stateful = await network(api, token="u1:p1")
    s6 = await subnet(api, stateful["id"], "fd00:3::/120", token="u1:p1",
                      ipv6_address_mode="dhcpv6-stateful")
    p6 = await port(api, stateful["id"], token="u1:p1")
    assert p6["fixed_ips"] == [{"subnet_id": s6["id"], "ip_address": "fd00:3::2"}]


async def test_port_allocation_and_release(api):
    net = await network(api, token="u1:p1")
    sub = await subnet(api, net["id"], "10.5.0.0/29", token="u1:p1")
    p1 = await port(api, net["id"], token="u1:p1", name="p1")
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", p1["mac_address"])
    assert p1["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.5.0.2"}]
    assert p1["status"] == "DOWN" and p1["device_id"] == "" and p1["device_owner"] == ""
    assert p1["port_security_enabled"] is True and len(p1["security_groups"]) == 1
    assert "binding:host_id" not in p1 and "binding:vif_type" not in p1   # admin only
    p2 = await port(api, net["id"], token="u1:p1",
                    fixed_ips=[{"ip_address": "10.5.0.5"}])
    assert p2["fixed_ips"][0]["ip_address"] == "10.5.0.5"
    kind, msg = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "fixed_ips": [{"ip_address": "10.5.0.5"}]}},
        token="u1:p1", status=409)
    assert kind == "IpAddressAlreadyAllocated"
    assert msg == f"IP address 10.5.0.5 already allocated in subnet {sub['id']}"
    kind, _ = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "fixed_ips": [{"ip_address": "10.6.0.5"}]}},
        token="u1:p1", status=400)
    assert kind == "InvalidIpForNetwork"
    kind, _ = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"],
                                                "ip_address": "10.5.0.7"}]}},
        token="u1:p1", status=400)
    assert kind == "InvalidIpForSubnet"            # the broadcast address
    others = [await port(api, net["id"], token="u1:p1") for _ in range(3)]
    assert sorted(o["fixed_ips"][0]["ip_address"] for o in others) == [
        "10.5.0.3", "10.5.0.4", "10.5.0.6"]
    kind, msg = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"]}}, token="u1:p1", status=409)
    assert kind == "IpAddressGenerationFailure"
    # a deleted port's address is free again
    await call(api, "DELETE", f"/v2.0/ports/{p2['id']}", token="u1:p1", status=204)
    again = await port(api, net["id"], token="u1:p1")
    assert again["fixed_ips"][0]["ip_address"] == "10.5.0.5"
    kind, msg = await error_of(api, "DELETE", f"/v2.0/subnets/{sub['id']}", token="u1:p1",
                               status=409)
    assert kind == "SubnetInUse"
    # fixed_ips filter
    _, body = await call(api, "GET", "/v2.0/ports?fixed_ips=ip_address%3D10.5.0.5",
                         token="u1:p1")
    assert [p["id"] for p in body["ports"]] == [again["id"]]


async def test_port_update_and_policy(api):
    net = await network(api, token="u1:p1")
    await subnet(api, net["id"], "10.5.0.0/24", token="u1:p1")
    p = await port(api, net["id"], token="u1:p1")
    _, body = await call(api, "PUT", f"/v2.0/ports/{p['id']}", {"port": {
        "fixed_ips": [{"ip_address": "10.5.0.77"}], "name": "x"}}, token="u1:p1",
        status=200)
    assert body["port"]["fixed_ips"][0]["ip_address"] == "10.5.0.77"
    kind, _ = await error_of(api, "PUT", f"/v2.0/ports/{p['id']}", {"port": {
        "binding:host_id": "h1"}}, token="u1:p1", status=403)
    assert kind == "PolicyNotAuthorized"
    kind, _msg = await error_of(api, "PUT", f"/v2.0/ports/{p['id']}", {"port": {
        "port_security_enabled": False}}, token="u1:p1", status=409)
    assert kind == "PortSecurityPortHasSecurityGroup"
    _, body = await call(api, "PUT", f"/v2.0/ports/{p['id']}", {"port": {
        "port_security_enabled": False, "security_groups": []}}, token="u1:p1", status=200)
    assert body["port"]["security_groups"] == []
    _, body = await call(api, "PUT", f"/v2.0/ports/{p['id']}", {"port": {
        "binding:host_id": "h1"}}, status=200)
    assert body["port"]["binding:host_id"] == "h1"
    assert body["port"]["binding:vif_type"] == "bridge" and body["port"]["status"] == "ACTIVE"
    await error_of(api, "GET", f"/v2.0/ports/{p['id']}", token="u2:p2", status=404)
    kind, _ = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "mac_address": "fa:16:3e:00:00:01"}}, token="u2:p2",
        status=404)
    assert kind == "NetworkNotFound"
    mac = p["mac_address"]
    kind, _ = await error_of(api, "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "mac_address": mac}}, token="u1:p1", status=409)
    assert kind == "MacAddressInUse"


async def test_deleting_an_instances_port_tells_compute(api):
    told: list[list[str]] = []

    async def ports_changed(conn, uuids):
        told.append(sorted(uuids))

    api.cloud.compute.ports_changed = ports_changed
    async with api.cloud.db.write() as conn:
        [vif] = await api.cloud.network.allocate_for_instance(
            conn, instance_uuid="inst-1", project_id="p1", host="h1", zone="nova",
            requested="auto", security_groups=["default"])
    await call(api, "DELETE", f"/v2.0/ports/{vif['port_id']}", token="u1:p1", status=204)
    assert told[-1] == ["inst-1"]
    async with api.cloud.db.read() as conn:
        assert await api.cloud.network.vifs_for_instances(conn, ["inst-1"]) == {"inst-1": []}
