"""Servers on networks through the real `openstack` CLI: `cloudd serve` with a
fake agent, on SQLite and on PostgreSQL.

`server create --network NAME` and `--nic port-id=...`, the addresses the
server shows (the port's address and MAC), `server add/remove security
group`, and deleting the servers: the port cloudd made is gone with its
address, the user's port stays with its address, unbound.
"""

from __future__ import annotations

import pytest

from cloudd.testing.agents import AgentProcess
from cloudd.testing.poll import wait
from cloudd.testing.process import CloudProcess
from tests.conftest import BACKENDS, Osc, backend_env


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"server-networks-{request.param}")
    cloud = CloudProcess(base / "data", env={
        **backend_env(request, request.param),
        "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
        "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "1"}).start()
    agent = AgentProcess(cloud, "compute1").start()
    osc = Osc(cloud)
    try:
        wait(lambda: [s for s in osc.json("compute", "service", "list", "--service",
                                           "nova-compute") if s["State"] == "up"],
              "the host up")
        image = base / "tiny.img"
        image.write_bytes(b"\0" * 1024 * 1024)
        osc.json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                 "--file", str(image), "--public", "tiny")
        yield osc
    finally:
        agent.stop()
        code = cloud.stop()
    assert code == 0, cloud.log_text()[-3000:]


def _create(osc: Osc, name: str, *extra: str) -> dict:
    return osc.json("server", "create", "--image", "tiny", "--flavor", "m1.tiny", *extra,
                    "--wait", name)


def test_servers_on_networks_with_the_cli(env):
    osc = env
    net = osc.json("network", "create", "cli-net")
    subnet = osc.json("subnet", "create", "--network", "cli-net", "--subnet-range",
                      "192.168.80.0/24", "cli-subnet")

    first = _create(osc, "on-net", "--network", "cli-net")
    assert first["status"] == "ACTIVE"
    [made] = osc.json("port", "list", "--server", first["id"], "--long")
    [fixed] = made["Fixed IP Addresses"]
    assert fixed["subnet_id"] == subnet["id"]
    assert fixed["ip_address"].startswith("192.168.80.")
    addresses = osc.json("server", "show", first["id"])["addresses"]
    assert addresses == {"cli-net": [fixed["ip_address"]]}
    shown = osc.json("server", "show", first["id"], "--os-compute-api-version", "2.1")
    assert fixed["ip_address"] in str(shown["addresses"])

    port = osc.json("port", "create", "--network", "cli-net", "--fixed-ip",
                    "subnet=cli-subnet,ip-address=192.168.80.200", "cli-port")
    second = _create(osc, "on-port", "--nic", f"port-id={port['id']}")
    assert osc.json("server", "show", second["id"])["addresses"] == \
        {"cli-net": ["192.168.80.200"]}
    bound = osc.json("port", "show", port["id"])
    assert (bound["device_id"], bound["binding_host_id"]) == (second["id"], "compute1")
    failed = osc.run("server", "create", "--image", "tiny", "--flavor", "m1.tiny", "--nic",
                     f"port-id={port['id']}", "again", check=False)
    assert failed.returncode != 0 and "is still in use" in failed.stderr

    web = osc.json("security", "group", "create", "web")
    before = osc.json("port", "show", port["id"])["security_group_ids"]
    assert web["id"] not in before
    osc.run("server", "add", "security", "group", second["id"], "web")
    assert sorted(osc.json("port", "show", port["id"])["security_group_ids"]) == \
        sorted([*before, web["id"]])
    osc.run("server", "remove", "security", "group", second["id"], "web")
    assert osc.json("port", "show", port["id"])["security_group_ids"] == before

    osc.run("server", "delete", "--wait", first["id"], second["id"])
    ports = {p["ID"] for p in osc.json("port", "list", "--network", net["id"])}
    assert made["ID"] not in ports                 # made by cloudd: gone with its address
    kept = osc.json("port", "show", port["id"])
    assert kept["device_id"] == "" and \
        kept["fixed_ips"][0]["ip_address"] == "192.168.80.200"
    # The freed address can be asked for again.
    third = _create(osc, "again", "--nic",
                    f"net-id={net['id']},v4-fixed-ip={fixed['ip_address']}")
    assert osc.json("server", "show", third["id"])["addresses"] == \
        {"cli-net": [fixed["ip_address"]]}


def test_interface_attach_and_detach_with_the_cli(env):
    osc = env
    osc.json("network", "create", "attach-net")
    osc.json("subnet", "create", "--network", "attach-net", "--subnet-range",
             "192.168.90.0/24", "attach-subnet")
    server = _create(osc, "attach-vm", "--network", "attach-net")
    [first] = osc.json("port", "list", "--server", server["id"])

    # add network: a port made for the server (deleted again when it is removed)
    osc.run("server", "add", "network", server["id"], "attach-net")
    ports = osc.json("port", "list", "--server", server["id"], "--long")
    assert len(ports) == 2
    made = next(p for p in ports if p["ID"] != first["ID"])
    assert made["Status"] == "ACTIVE"
    ip = made["Fixed IP Addresses"][0]["ip_address"]
    assert sorted(osc.json("server", "show", server["id"])["addresses"]["attach-net"]) == \
        sorted([first["Fixed IP Addresses"][0]["ip_address"], ip])

    # add port: the user's own port (kept, unbound, when it is removed)
    port = osc.json("port", "create", "--network", "attach-net", "--fixed-ip",
                    "subnet=attach-subnet,ip-address=192.168.90.222", "attach-port")
    osc.run("server", "add", "port", server["id"], "attach-port")
    bound = osc.json("port", "show", port["id"])
    assert (bound["device_id"], bound["binding_host_id"], bound["status"]) == \
        (server["id"], "compute1", "ACTIVE")
    failed = osc.run("server", "add", "port", server["id"], "attach-port", check=False)
    assert failed.returncode != 0 and "is still in use" in failed.stderr
    failed = osc.run("server", "add", "network", server["id"], "no-such-net", check=False)
    assert failed.returncode != 0
    actions = [a["Action"] for a in osc.json("server", "event", "list", server["id"])]
    assert actions.count("attach_interface") == 2

    osc.run("server", "remove", "port", server["id"], "attach-port")
    wait(lambda: osc.json("port", "show", port["id"])["device_id"] == "", "the port free")
    kept = osc.json("port", "show", port["id"])
    assert kept["fixed_ips"][0]["ip_address"] == "192.168.90.222"
    osc.run("server", "remove", "port", server["id"], made["ID"])
    wait(lambda: made["ID"] not in {p["ID"] for p in osc.json("port", "list")},
         "the made port deleted")
    assert [p["ID"] for p in osc.json("port", "list", "--server", server["id"])] == \
        [first["ID"]]
    # remove network: every port of the server on that network
    osc.run("server", "remove", "network", server["id"], "attach-net")
    wait(lambda: osc.json("port", "list", "--server", server["id"]) == [],
         "no port left")
    assert osc.json("server", "show", server["id"])["status"] == "ACTIVE"
    osc.run("server", "delete", "--wait", server["id"])
