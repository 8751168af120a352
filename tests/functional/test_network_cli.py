"""Networks through the real `openstack` CLI against a running `cloudd serve`
(Keystone tokens and Neutron's policy), on SQLite and on PostgreSQL."""

from __future__ import annotations


def test_network_subnet_port_lifecycle(osc):
    nets = osc.json("network", "list")
    assert any(n["Name"] == "default" for n in nets)
    net = osc.json("network", "create", "--description", "cli", "cli-net")
    assert net["name"] == "cli-net" and net["status"] == "ACTIVE"
    assert net["provider:network_type"] == "local" or net.get("provider_network_type") == \
        "local"
    shown = osc.json("network", "show", "cli-net")
    assert shown["id"] == net["id"] and shown["description"] == "cli"
    sub = osc.json("subnet", "create", "--network", "cli-net", "--subnet-range",
                   "192.168.50.0/24", "--dns-nameserver", "192.168.50.53", "cli-sub")
    assert sub["cidr"] == "192.168.50.0/24" and sub["gateway_ip"] == "192.168.50.1"
    subs = osc.json("subnet", "list", "--network", "cli-net")
    assert [s["Name"] for s in subs] == ["cli-sub"]
    port = osc.json("port", "create", "--network", "cli-net", "--fixed-ip",
                    "subnet=cli-sub,ip-address=192.168.50.20", "cli-port")
    assert port["mac_address"].startswith("fa:16:3e:")
    ips = port["fixed_ips"]
    assert "192.168.50.20" in str(ips)
    ports = osc.json("port", "list", "--network", "cli-net")
    assert [p["Name"] for p in ports] == ["cli-port"]
    busy = osc.run("network", "delete", "cli-net", check=False)
    assert busy.returncode != 0
    osc.run("port", "delete", "cli-port")
    osc.run("subnet", "delete", "cli-sub")
    osc.run("network", "delete", "cli-net")
    gone = osc.run("network", "show", "cli-net", check=False)
    assert gone.returncode != 0
    assert "No Network found for cli-net" in gone.stderr or "could not be found" in \
        gone.stderr or gone.stderr


def test_security_groups_and_rules(osc):
    group = osc.json("security", "group", "create", "--description", "web servers",
                     "cli-web")
    assert group["name"] == "cli-web"
    rule = osc.json("security", "group", "rule", "create", "--protocol", "tcp",
                    "--dst-port", "22", "--remote-ip", "10.0.0.0/8", "cli-web")
    assert rule["port_range_min"] == 22 and rule["remote_ip_prefix"] == "10.0.0.0/8"
    dup = osc.run("security", "group", "rule", "create", "--protocol", "tcp",
                  "--dst-port", "22", "--remote-ip", "10.0.0.0/8", "cli-web", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    icmp = osc.json("security", "group", "rule", "create", "--protocol", "icmp", "cli-web")
    rules = osc.json("security", "group", "rule", "list", "cli-web")
    ids = {r["ID"] for r in rules}
    assert {rule["id"], icmp["id"]} <= ids and len(ids) == 4      # with 2 egress rules
    osc.run("security", "group", "rule", "delete", icmp["id"])
    rules = osc.json("security", "group", "rule", "list", "cli-web")
    assert icmp["id"] not in {r["ID"] for r in rules}
    osc.run("security", "group", "delete", "cli-web")
    groups = osc.json("security", "group", "list")
    assert "cli-web" not in [g["Name"] for g in groups]
    assert "default" in [g["Name"] for g in groups]


def test_network_quotas(osc):
    osc.run("quota", "set", "--networks", "7", "--ports", "40", "admin")
    shown = osc.json("quota", "show", "--network", "admin")
    flat = {k.lower(): v for k, v in shown.items()} if isinstance(shown, dict) else {
        row["Resource"].lower(): row["Limit"] for row in shown}
    assert flat.get("networks") == 7 and flat.get("ports") == 40
    osc.run("quota", "set", "--networks", "100", "--ports", "500", "admin")
