"""Networks, versions and extensions: Neutron's bodies, errors, policy and
project isolation, list filters, fields, sorting and pagination."""

from __future__ import annotations

import pytest
from yarl import URL

from tests.network.conftest import call, error_of, network, port, subnet

pytestmark = pytest.mark.asyncio


async def test_versions_and_extensions(api):
    _, body = await call(api, "GET", "/", status=200)
    assert body["versions"][0]["id"] == "v2.0"
    assert body["versions"][0]["links"][0]["href"].endswith("/v2.0/")
    _, body = await call(api, "GET", "/v2.0/extensions", token="u:p", status=200)
    aliases = {e["alias"] for e in body["extensions"]}
    assert {"security-group", "port-security", "provider", "external-net", "quotas",
            "net-mtu", "binding", "standard-attr-description"} <= aliases
    assert "router" not in aliases and "standard-attr-tag" in aliases
    _, body = await call(api, "GET", "/v2.0/extensions/provider", status=200)
    assert body["extension"]["alias"] == "provider"
    _kind, _ = await error_of(api, "GET", "/v2.0/extensions/dvr", status=404)


async def test_bootstrap_default_network_is_shared_and_idempotent(api):
    _, body = await call(api, "GET", "/v2.0/networks?name=default", token="u:p",
                         status=200)
    [net] = body["networks"]
    assert net["shared"] is True and net["status"] == "ACTIVE" and net["mtu"] == 1500
    assert "provider:network_type" not in net          # admin only
    _, sub = await call(api, "GET", f"/v2.0/subnets/{net['subnets'][0]}", token="u:p",
                        status=200)
    assert sub["subnet"]["cidr"] == "10.253.0.0/24"
    assert sub["subnet"]["gateway_ip"] == "10.253.0.1"
    assert sub["subnet"]["allocation_pools"] == [{"start": "10.253.0.2",
                                                   "end": "10.253.0.254"}]
    from cloudd.services.network import bootstrap
    assert await bootstrap.ensure_default_network(api.cloud) == net["id"]
    _, body = await call(api, "GET", "/v2.0/networks?name=default", status=200)
    assert len(body["networks"]) == 1
    assert body["networks"][0]["provider:network_type"] == "local"


async def test_create_show_update_delete(api):
    net = await network(api, token="u1:p1", name="n1", description="d")
    assert net["project_id"] == net["tenant_id"] == "p1"
    assert net["admin_state_up"] is True and net["shared"] is False
    assert net["router:external"] is False and net["port_security_enabled"] is True
    assert net["subnets"] == [] and net["revision_number"] == 0
    assert net["created_at"].endswith("Z")
    _, body = await call(api, "PUT", f"/v2.0/networks/{net['id']}",
                         {"network": {"name": "n2", "mtu": 1400}}, token="u1:p1", status=200)
    assert body["network"]["name"] == "n2" and body["network"]["mtu"] == 1400
    assert body["network"]["revision_number"] == 1
    await call(api, "DELETE", f"/v2.0/networks/{net['id']}", token="u1:p1", status=204)
    kind, msg = await error_of(api, "GET", f"/v2.0/networks/{net['id']}", token="u1:p1",
                               status=404)
    assert kind == "NetworkNotFound"
    assert msg == f"Network {net['id']} could not be found."


async def test_bad_input_is_neutrons_400_and_changes_nothing(api):
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": {"bogus": 1}},
                               status=400)
    assert kind == "HTTPBadRequest" and msg == "Unrecognized attribute(s) 'bogus'"
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"net": {}}, status=400)
    assert msg == "Unable to find 'network' in request body"
    kind, msg = await error_of(api, "POST", "/v2.0/networks",
                               {"network": {"admin_state_up": "maybe"}}, status=400)
    assert "cannot be converted to boolean" in msg
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": {"mtu": 9000}},
                               status=400)
    assert kind == "InvalidInput" and "maximum is 1500" in msg
    _, body = await call(api, "GET", "/v2.0/networks", status=200)
    assert [n["name"] for n in body["networks"]] == ["default"]


async def test_provider_attributes_are_admin_only_and_checked(api):
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": {
        "provider:network_type": "flat", "provider:physical_network": "physnet1"}},
        token="u1:p1", status=403)
    assert kind == "PolicyNotAuthorized"
    assert msg == ("(rule:create_network and rule:create_network:provider:network_type and "
                   "rule:create_network:provider:physical_network) is disallowed by policy")
    kind, _ = await error_of(api, "POST", "/v2.0/networks",
                             {"network": {"shared": True}}, token="u1:p1", status=403)
    flat = await network(api, **{"provider:network_type": "flat",
                                 "provider:physical_network": "physnet1"})
    assert flat["provider:physical_network"] == "physnet1"
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": {
        "provider:network_type": "flat", "provider:physical_network": "physnet1"}},
        status=409)
    assert kind == "FlatNetworkInUse"
    vlan = await network(api, **{"provider:network_type": "vlan",
                                 "provider:physical_network": "physnet1",
                                 "provider:segmentation_id": 100})
    assert vlan["provider:segmentation_id"] == 100
    kind, _ = await error_of(api, "POST", "/v2.0/networks", {"network": {
        "provider:network_type": "vlan", "provider:physical_network": "physnet1",
        "provider:segmentation_id": 100}}, status=409)
    assert kind == "VlanIdInUse"
    for bad, text in ((
            {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
             "provider:segmentation_id": 5000}, "out of range"),
            ({"provider:network_type": "vxlan"}, "not supported"),
            ({"provider:network_type": "flat"}, "physical_network required")):
        kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": bad},
                                   status=400)
        assert kind == "InvalidInput" and text in msg


async def test_project_isolation(api):
    mine = await network(api, token="u1:p1", name="mine")
    await network(api, token="u2:p2", name="theirs")
    _, body = await call(api, "GET", "/v2.0/networks", token="u1:p1", status=200)
    assert sorted(n["name"] for n in body["networks"]) == ["default", "mine"]
    await error_of(api, "GET", f"/v2.0/networks/{mine['id']}", token="u2:p2", status=404)
    await error_of(api, "DELETE", f"/v2.0/networks/{mine['id']}", token="u2:p2", status=404)
    await error_of(api, "POST", "/v2.0/subnets", {"subnet": {
        "network_id": mine["id"], "cidr": "10.9.0.0/24", "ip_version": 4}},
        token="u2:p2", status=404)
    # the shared default: others may use it but not change or delete it
    _, body = await call(api, "GET", "/v2.0/networks?name=default", token="u2:p2")
    default = body["networks"][0]
    kind, _ = await error_of(api, "DELETE", f"/v2.0/networks/{default['id']}",
                             token="u2:p2", status=403)
    assert kind == "PolicyNotAuthorized"
    await port(api, default["id"], token="u2:p2")
    _, body = await call(api, "GET", "/v2.0/networks", status=200)
    assert len(body["networks"]) == 3          # admin sees all


async def test_delete_in_use(api):
    net = await network(api, token="u1:p1")
    await subnet(api, net["id"], "10.1.0.0/24", token="u1:p1")
    p = await port(api, net["id"], token="u1:p1")
    kind, msg = await error_of(api, "DELETE", f"/v2.0/networks/{net['id']}", token="u1:p1",
                               status=409)
    assert kind == "NetworkInUse" and "one or more ports" in msg
    await call(api, "DELETE", f"/v2.0/ports/{p['id']}", token="u1:p1", status=204)
    await call(api, "DELETE", f"/v2.0/networks/{net['id']}", token="u1:p1", status=204)
    _, body = await call(api, "GET", "/v2.0/subnets", token="u1:p1")
    assert all(s["network_id"] != net["id"] for s in body["subnets"])


async def test_filters_fields_sorting_and_pagination(api):
    for name in ("c", "a", "b", "d"):
        await network(api, token="u1:p1", name=name, admin_state_up=name != "d")
    _, body = await call(api, "GET", "/v2.0/networks?name=a&name=b&fields=name&fields=id",
                         token="u1:p1")
    assert sorted(n["name"] for n in body["networks"]) == ["a", "b"]
    assert set(body["networks"][0]) == {"name", "id"}
    _, body = await call(api, "GET", "/v2.0/networks?admin_state_up=false", token="u1:p1")
    assert [n["name"] for n in body["networks"]] == ["d"]
    _, body = await call(api, "GET", "/v2.0/networks?sort_key=name&sort_dir=desc",
                         token="u1:p1")
    assert [n["name"] for n in body["networks"]] == ["default", "d", "c", "b", "a"]
    seen = []
    url = "/v2.0/networks?sort_key=name&sort_dir=asc&limit=2"
    while url:
        _, body = await call(api, "GET", url, token="u1:p1", status=200)
        seen += [n["name"] for n in body["networks"]]
        nxt = [link for link in body.get("networks_links", []) if link["rel"] == "next"]
        url = URL(nxt[0]["href"]).path_qs if nxt else None
    assert seen == ["a", "b", "c", "d", "default"]
    _kind, msg = await error_of(api, "GET", "/v2.0/networks?sort_key=bogus", status=400)
    assert "sort_keys" in msg


async def test_tags(api):
    net = await network(api, token="u1:p1", name="tagged")
    other = await network(api, token="u1:p1", name="plain")
    base = f"/v2.0/networks/{net['id']}/tags"
    await call(api, "PUT", f"{base}/red", token="u1:p1", status=201)
    _, body = await call(api, "PUT", base, {"tags": ["blue", "red"]}, token="u1:p1",
                         status=200)
    assert body["tags"] == ["blue", "red"]
    _, body = await call(api, "GET", f"/v2.0/networks/{net['id']}", token="u1:p1")
    assert body["network"]["tags"] == ["blue", "red"]
    _, body = await call(api, "GET", "/v2.0/networks?tags=red,blue", token="u1:p1")
    assert [n["name"] for n in body["networks"]] == ["tagged"]
    _, body = await call(api, "GET", "/v2.0/networks?not-tags-any=red", token="u1:p1")
    assert sorted(n["name"] for n in body["networks"]) == ["default", "plain"]
    await call(api, "DELETE", f"{base}/red", token="u1:p1", status=204)
    kind, _ = await error_of(api, "DELETE", f"{base}/red", token="u1:p1", status=404)
    assert kind == "TagNotFound"
    await error_of(api, "PUT", f"/v2.0/networks/{other['id']}/tags/x", token="u2:p2",
                   status=404)
    await call(api, "DELETE", base, token="u1:p1", status=204)
    _, body = await call(api, "GET", base, token="u1:p1", status=200)
    assert body["tags"] == []


async def test_unsharing_a_network_others_use_is_refused(api):
    net = await network(api, shared=True, name="s")
    await subnet(api, net["id"], "10.40.0.0/24")
    await port(api, net["id"], token="u2:p2")
    kind, msg = await error_of(api, "PUT", f"/v2.0/networks/{net['id']}",
                               {"network": {"shared": False}}, status=409)
    assert kind == "InvalidSharedSetting" and "Multiple tenants are using it" in msg
    kind, msg = await error_of(api, "PUT", f"/v2.0/networks/{net['id']}",
                               {"network": {"provider:network_type": "flat"}}, status=400)
    assert kind == "InvalidInput"
    _, body = await call(api, "GET", f"/v2.0/networks/{net['id']}", status=200)
    assert body["network"]["shared"] is True and body["network"]["revision_number"] == 0
