"""Security groups and rules: the default group made on first use exactly as
Neutron's, rule checks and duplicates, remote group vs prefix, isolation."""

from __future__ import annotations

import pytest

from tests.network.conftest import call, error_of, network, port, subnet

pytestmark = pytest.mark.asyncio


def _shape(rule: dict) -> tuple:
    return (rule["direction"], rule["ethertype"], rule["protocol"],
            rule["remote_group_id"] is not None, rule["remote_ip_prefix"])


async def test_default_group_on_first_use(api):
    _, body = await call(api, "GET", "/v2.0/security-groups", token="u1:p1", status=200)
    [group] = body["security_groups"]
    assert group["name"] == "default"
    assert group["description"] == "Default security group"
    assert group["project_id"] == "p1" and group["stateful"] is True
    rules = group["security_group_rules"]
    assert sorted(_shape(r) for r in rules) == [
        ("egress", "IPv4", None, False, None), ("egress", "IPv6", None, False, None),
        ("ingress", "IPv4", None, True, None), ("ingress", "IPv6", None, True, None)]
    assert all(r["remote_group_id"] in (None, group["id"]) for r in rules)
    # listing again makes no second one
    _, body = await call(api, "GET", "/v2.0/security-groups", token="u1:p1")
    assert len(body["security_groups"]) == 1
    kind, _msg = await error_of(api, "POST", "/v2.0/security-groups",
                               {"security_group": {"name": "default"}}, token="u1:p1",
                               status=409)
    assert kind == "SecurityGroupDefaultAlreadyExists"
    kind, _ = await error_of(api, "DELETE", f"/v2.0/security-groups/{group['id']}",
                             token="u1:p1", status=409)
    assert kind == "SecurityGroupCannotRemoveDefault"


async def test_group_crud_and_isolation(api):
    _, body = await call(api, "POST", "/v2.0/security-groups", {"security_group": {
        "name": "web", "description": "w"}}, token="u1:p1", status=201)
    web = body["security_group"]
    assert sorted(_shape(r) for r in web["security_group_rules"]) == [
        ("egress", "IPv4", None, False, None), ("egress", "IPv6", None, False, None)]
    _, body = await call(api, "GET", "/v2.0/security-groups", token="u2:p2")
    assert [g["name"] for g in body["security_groups"]] == ["default"]
    kind, msg = await error_of(api, "GET", f"/v2.0/security-groups/{web['id']}",
                               token="u2:p2", status=404)
    assert kind == "SecurityGroupNotFound"
    assert msg == f"Security group {web['id']} does not exist"
    _, body = await call(api, "PUT", f"/v2.0/security-groups/{web['id']}",
                         {"security_group": {"name": "www"}}, token="u1:p1", status=200)
    assert body["security_group"]["name"] == "www"
    net = await network(api, token="u1:p1")
    await subnet(api, net["id"], "10.5.0.0/24", token="u1:p1")
    p = await port(api, net["id"], token="u1:p1", security_groups=[web["id"]])
    assert p["security_groups"] == [web["id"]]
    kind, _ = await error_of(api, "DELETE", f"/v2.0/security-groups/{web['id']}",
                             token="u1:p1", status=409)
    assert kind == "SecurityGroupInUse"
    await call(api, "DELETE", f"/v2.0/ports/{p['id']}", token="u1:p1", status=204)
    await call(api, "DELETE", f"/v2.0/security-groups/{web['id']}", token="u1:p1",
               status=204)


async def _group(api, token="u1:p1", name="g"):
    _, body = await call(api, "POST", "/v2.0/security-groups",
                         {"security_group": {"name": name}}, token=token, status=201)
    return body["security_group"]


async def _rule(api, token="u1:p1", status=201, **attrs):
    return await call(api, "POST", "/v2.0/security-group-rules",
                      {"security_group_rule": attrs}, token=token, status=status)


async def test_rules_checks_and_duplicates(api):
    g = await _group(api)
    _, body = await _rule(api, security_group_id=g["id"], direction="ingress",
                          protocol="tcp", port_range_min=22, port_range_max=22,
                          remote_ip_prefix="10.0.0.5/24")
    rule = body["security_group_rule"]
    assert rule["ethertype"] == "IPv4" and rule["protocol"] == "tcp"
    assert rule["remote_ip_prefix"] == "10.0.0.5/24"
    assert rule["normalized_cidr"] == "10.0.0.0/24"
    _, body = await call(api, "POST", "/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": g["id"], "direction": "ingress", "protocol": "6",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/24"}},
        token="u1:p1", status=409)
    assert body["NeutronError"]["type"] == "SecurityGroupRuleExists"
    assert body["NeutronError"]["message"] == (
        f"Security group rule already exists. Rule id is {rule['id']}.")
    base = {"security_group_id": g["id"], "direction": "ingress"}
    cases = [
        ({"direction": "sideways"}, "HTTPBadRequest"),
        ({"protocol": "bogus"}, "SecurityGroupRuleInvalidProtocol"),
        ({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20},
         "SecurityGroupInvalidPortRange"),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 20},
         "SecurityGroupInvalidPortValue"),
        ({"port_range_min": 20, "port_range_max": 20},
         "SecurityGroupProtocolRequiredWithPorts"),
        ({"protocol": "icmp", "port_range_max": 3}, "SecurityGroupMissingIcmpType"),
        ({"protocol": "icmp", "port_range_min": 300}, "SecurityGroupInvalidIcmpValue"),
        ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2},
         "SecurityGroupInvalidProtocolForPort"),
        ({"remote_ip_prefix": "::/0"}, "SecurityGroupRuleParameterConflict"),
        ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": g["id"]},
         "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
        ({"ethertype": "IPv4", "protocol": "ipv6-icmp"},
         "SecurityGroupEthertypeConflictWithProtocol"),
    ]
    for attrs, kind in cases:
        got, msg = await error_of(api, "POST", "/v2.0/security-group-rules",
                                  {"security_group_rule": {**base, **attrs}}, token="u1:p1",
                                  status=400)
        assert got == kind, (attrs, got, msg)
    kind, _ = await error_of(api, "POST", "/v2.0/security-group-rules",
                             {"security_group_rule": {**base, "remote_group_id":
                                                      "6a2d7c0e-0000-4000-8000-000000000000"}},
                             token="u1:p1", status=404)
    assert kind == "SecurityGroupNotFound"
    # another project cannot add rules to the group
    kind, _ = await error_of(api, "POST", "/v2.0/security-group-rules",
                             {"security_group_rule": base}, token="u2:p2", status=404)
    _, body = await call(api, "GET", f"/v2.0/security-group-rules?security_group_id={g['id']}",
                         token="u1:p1")
    assert len(body["security_group_rules"]) == 3
    await call(api, "DELETE", f"/v2.0/security-group-rules/{rule['id']}", token="u1:p1",
               status=204)
    kind, msg = await error_of(api, "DELETE", f"/v2.0/security-group-rules/{rule['id']}",
                               token="u1:p1", status=404)
    assert kind == "SecurityGroupRuleNotFound"


async def test_rule_changes_tell_compute(api):
    """Adding a rule to a group tells compute which instances' rules changed."""
    told: list[list[str]] = []

    async def ports_changed(conn, uuids):
        told.append(sorted(uuids))

    api.cloud.compute.ports_changed = ports_changed
    async with api.cloud.db.write() as conn:
        await api.cloud.network.allocate_for_instance(
            conn, instance_uuid="inst-1", project_id="p1", host="h1", zone="nova",
            requested="auto", security_groups=["default"])
    told.clear()
    _, body = await call(api, "GET", "/v2.0/security-groups?name=default", token="u1:p1")
    gid = body["security_groups"][0]["id"]
    _, body = await _rule(api, security_group_id=gid, direction="ingress", protocol="icmp")
    assert told == [["inst-1"]]
    await call(api, "DELETE",
               f"/v2.0/security-group-rules/{body['security_group_rule']['id']}",
               token="u1:p1", status=204)
    assert told == [["inst-1"], ["inst-1"]]


async def test_members_joining_and_leaving_tell_the_hosts_not_the_members(api):
    """A new member of a group whose rules name the group as remote group
    sends the group's members once to each host with a port in it (not a
    network_update to every other member), except to the host of the build
    (its spawn's vif carries them); so does one leaving, to every host."""
    told: list[list[str]] = []
    sent: list[tuple] = []

    async def ports_changed(conn, uuids):
        told.append(sorted(uuids))

    async def security_group_members(conn, group_id, members, hosts):
        sent.append((group_id, members["IPv4"], sorted(hosts), members["version"]))

    api.cloud.compute.ports_changed = ports_changed
    api.cloud.compute.security_group_members = security_group_members
    net = api.cloud.network
    async with api.cloud.db.write() as conn:
        for uuid, host in (("a", "h1"), ("b", "h2"), ("c", "h1")):
            await net.allocate_for_instance(conn, instance_uuid=uuid, project_id="p1",
                                            host=host, zone="nova", requested="auto",
                                            security_groups=["default"])
    gid = sent[0][0]
    assert [s[:3] for s in sent] == [
        (gid, ["10.253.0.2/32", "10.253.0.3/32"], ["h1"]),             # b on h2
        (gid, ["10.253.0.2/32", "10.253.0.3/32", "10.253.0.4/32"], ["h2"])]   # c on h1
    async with api.cloud.db.write() as conn:
        await net.deallocate_for_instance(conn, "a")
    assert sent[-1][:3] == (gid, ["10.253.0.3/32", "10.253.0.4/32"], ["h1", "h2"])
    assert [s[3] for s in sent] == sorted({s[3] for s in sent})   # versions only grow
    assert told == []
