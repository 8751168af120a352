"""Compute through the real `openstack` CLI: `cloudd serve` with two fake agents.

The compute issue's end-to-end list, on SQLite and on PostgreSQL: flavors,
keypairs, a server's whole life (create, show, properties, reboot, stop and
start, resize confirm and revert, rebuild, console log, lock, pause,
suspend, delete), anti-affinity over two hosts and "No valid host" for a
third server, the instance quota, hypervisors, services (a killed agent
goes down after the TTL), zones, aggregates and usage; and no allocation is
left in placement for a deleted server.
"""

from __future__ import annotations

import pytest

from cloudd.testing.agents import AgentProcess
from cloudd.testing.poll import wait
from cloudd.testing.process import CloudProcess
from tests.conftest import BACKENDS, Osc, backend_env

HOSTS = ("compute1", "compute2")
DOWN_AFTER = 4          # [compute] service_down_time in this cloud, seconds
PLACEMENT = ("--os-placement-api-version", "1.39")


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"compute-{request.param}")
    cloud = CloudProcess(base / "data", env={
        **backend_env(request, request.param),
        "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
        "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "1",
        "CLOUDD_COMPUTE__SERVICE_DOWN_TIME": str(DOWN_AFTER)}).start()
    agents = {h: AgentProcess(cloud, h).start() for h in HOSTS}
    osc = Osc(cloud)
    try:
        wait(lambda: len([s for s in osc.json("compute", "service", "list",
                                               "--service", "nova-compute")
                           if s["State"] == "up"]) == len(HOSTS), "hosts up")
        image = base / "tiny.img"
        image.write_bytes(b"\0" * 1024 * 1024)
        osc.json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                 "--file", str(image), "--public", "tiny")
        yield osc, cloud, agents
    finally:
        for agent in agents.values():
            agent.stop()
        code = cloud.stop()
    assert code == 0, cloud.log_text()[-3000:]


def _flavor(shown: dict) -> str:
    """The flavor name in `server show` output (a dict from microversion 2.47 on)."""
    flavor = shown["flavor"]
    return flavor["original_name"] if isinstance(flavor, dict) else flavor.split(" ")[0]


def _status(osc: Osc, server: str) -> str:
    return osc.json("server", "show", server)["status"]


def _wait_status(osc: Osc, server: str, status: str) -> dict:
    return wait(lambda: (s := osc.json("server", "show", server))["status"] == status and s,
                 f"{server} to be {status}")


def _create(osc: Osc, name: str, *extra: str, wait: bool = True) -> dict:
    args = ["server", "create", "--image", "tiny", "--flavor", "m1.tiny", *extra, name]
    return osc.json(*args, "--wait") if wait else osc.json(*args)


def test_flavors(env):
    osc, _, _ = env
    names = {f["Name"] for f in osc.json("flavor", "list")}
    assert {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"} <= names
    made = osc.json("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                    "cli.flavor")
    assert made["ram"] == 256 and made["name"] == "cli.flavor"
    osc.run("flavor", "delete", "cli.flavor")
    assert "cli.flavor" not in {f["Name"] for f in osc.json("flavor", "list")}


def test_keypairs(env, tmp_path):
    osc, _, _ = env
    generated = osc.run("keypair", "create", "cli-gen").stdout
    assert "PRIVATE KEY" in generated
    pub = tmp_path / "k.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDFmsJ1tfFZy3xAeZ6WRpM+3ZBzkBQnQ"
                   "uVe1KpZa/2Sk cli@test\n")
    imported = osc.json("keypair", "create", "--public-key", str(pub), "cli-imp")
    assert imported["name"] == "cli-imp" and imported["fingerprint"]
    assert {"cli-gen", "cli-imp"} <= {k["Name"] for k in osc.json("keypair", "list")}
    osc.run("keypair", "delete", "cli-gen", "cli-imp")
    assert not {"cli-gen", "cli-imp"} & {k["Name"] for k in osc.json("keypair", "list")}


def test_server_life(env):
    osc, _, _ = env
    server = _create(osc, "life", "--property", "role=web")
    assert server["status"] == "ACTIVE"
    sid = server["id"]
    assert any(s["ID"] == sid for s in osc.json("server", "list"))
    shown = osc.json("server", "show", sid)
    assert shown["OS-EXT-SRV-ATTR:host"] in HOSTS and _flavor(shown) == "m1.tiny"

    osc.run("server", "set", "--property", "tier=1", sid)
    assert osc.json("server", "show", sid)["properties"] == {"role": "web", "tier": "1"}
    osc.run("server", "unset", "--property", "role", sid)
    assert osc.json("server", "show", sid)["properties"] == {"tier": "1"}

    osc.run("server", "reboot", "--soft", "--wait", sid)
    assert _status(osc, sid) == "ACTIVE"
    osc.run("server", "reboot", "--hard", "--wait", sid)
    assert _status(osc, sid) == "ACTIVE"

    osc.run("server", "stop", sid)
    assert _wait_status(osc, sid, "SHUTOFF")["OS-EXT-STS:power_state"] in (4, "Shutdown")
    osc.run("server", "start", sid)
    assert _wait_status(osc, sid, "ACTIVE")["OS-EXT-STS:power_state"] in (1, "Running")

    osc.run("server", "resize", "--flavor", "m1.small", "--wait", sid)
    assert _status(osc, sid) == "VERIFY_RESIZE"
    osc.run("server", "resize", "confirm", sid)
    confirmed = _wait_status(osc, sid, "ACTIVE")
    assert _flavor(confirmed) == "m1.small"

    osc.run("server", "resize", "--flavor", "m1.tiny", "--wait", sid)
    assert _status(osc, sid) == "VERIFY_RESIZE"
    osc.run("server", "resize", "revert", sid)
    reverted = _wait_status(osc, sid, "ACTIVE")
    assert _flavor(reverted) == "m1.small"

    osc.run("server", "rebuild", "--image", "tiny", "--wait", sid)
    assert _status(osc, sid) == "ACTIVE"
    assert "\n" in osc.run("console", "log", "show", sid).stdout.strip() or \
        osc.run("console", "log", "show", sid).stdout.strip()

    snap = osc.json("server", "image", "create", "--wait", "--name", "life-snap", sid)
    image = osc.json("image", "show", snap["id"])
    assert image["status"] == "active" and image["properties"]["image_type"] == "snapshot"
    assert image["properties"]["instance_uuid"] == sid
    clone = osc.json("server", "create", "--image", "life-snap", "--flavor", "m1.small",
                     "--wait", "life-clone")
    assert clone["status"] == "ACTIVE"
    osc.run("server", "delete", "--wait", clone["id"])
    osc.run("image", "delete", snap["id"])
    for name in ("life-daily-1", "life-daily-2"):   # rotation 1 keeps the newest only
        osc.run("server", "backup", "create", "--name", name, "--type", "daily",
                "--rotate", "1", "--wait", sid)
    backups = [i["Name"] for i in osc.json("image", "list", "--property",
                                           f"instance_uuid={sid}")]
    assert backups == ["life-daily-2"]

    osc.run("server", "lock", sid)
    assert osc.json("server", "show", sid, "--os-compute-api-version", "2.9")["locked"]
    osc.run("server", "unlock", sid)
    osc.run("server", "pause", sid)
    _wait_status(osc, sid, "PAUSED")
    osc.run("server", "unpause", sid)
    _wait_status(osc, sid, "ACTIVE")
    osc.run("server", "suspend", sid)
    _wait_status(osc, sid, "SUSPENDED")
    osc.run("server", "resume", sid)
    _wait_status(osc, sid, "ACTIVE")

    actions = {a["Action"] for a in osc.json("server", "event", "list", sid)}
    assert {"create", "reboot", "stop", "start", "resize", "confirmResize",
            "revertResize", "rebuild", "createImage", "pause", "suspend"} <= actions

    osc.run("server", "delete", "--wait", sid)
    assert not any(s["ID"] == sid for s in osc.json("server", "list"))
    assert not osc.json("resource", "provider", "allocation", "show", sid, *PLACEMENT)


def test_anti_affinity_then_no_valid_host(env):
    osc, _, _ = env
    group = osc.json("server", "group", "create", "--policy", "anti-affinity", "spread")
    hint = ("--hint", f"group={group['id']}")
    first = _create(osc, "spread-1", *hint)
    second = _create(osc, "spread-2", *hint)
    hosts = {osc.json("server", "show", s["id"])["OS-EXT-SRV-ATTR:host"]
             for s in (first, second)}
    assert hosts == set(HOSTS)
    third = _create(osc, "spread-3", *hint, wait=False)
    failed = _wait_status(osc, third["id"], "ERROR")
    assert "No valid host" in str(failed.get("fault"))
    assert not osc.json("resource", "provider", "allocation", "show", third["id"],
                        *PLACEMENT)
    for s in (first, second, third):
        osc.run("server", "delete", "--wait", s["id"])
    osc.run("server", "group", "delete", group["id"])


def test_instance_quota(env):
    osc, cloud, _ = env
    project = cloud.admin_auth()["project_name"]
    osc.run("quota", "set", "--instances", "2", project)
    try:
        made = [_create(osc, f"q-{i}") for i in range(2)]
        refused = osc.run("server", "create", "--image", "tiny", "--flavor", "m1.tiny",
                          "q-3", check=False)
        assert refused.returncode != 0
        assert "Quota exceeded for instances" in refused.stderr
        for s in made:
            osc.run("server", "delete", "--wait", s["id"])
    finally:
        osc.run("quota", "set", "--instances", "10", project)


def test_hosts_zones_aggregates_usage(env):
    osc, _, _ = env
    hypervisors = osc.json("hypervisor", "list")
    assert {h["Hypervisor Hostname"] for h in hypervisors} == set(HOSTS)
    assert "nova" in {z["Zone Name"] for z in osc.json("availability", "zone", "list")}
    osc.json("aggregate", "create", "--zone", "az-one", "agg1")
    osc.run("aggregate", "add", "host", "agg1", "compute1")
    osc.run("aggregate", "set", "--zone", "az-two", "agg1")
    shown = osc.json("aggregate", "show", "agg1")
    assert shown["availability_zone"] == "az-two" and shown["hosts"] == ["compute1"]
    assert "az-two" in {z["Zone Name"] for z in osc.json("availability", "zone", "list")}
    osc.run("aggregate", "remove", "host", "agg1", "compute1")
    osc.run("aggregate", "delete", "agg1")
    usage = osc.json("usage", "list")
    assert isinstance(usage, list)


def test_no_allocations_left_after_deletes(env):
    osc, _, _ = env
    for server in osc.json("server", "list"):
        osc.run("server", "delete", "--wait", server["ID"])
    for rp in osc.json("resource", "provider", "list", *PLACEMENT):
        usages = osc.json("resource", "provider", "usage", "show", rp["uuid"], *PLACEMENT)
        assert all(u["usage"] == 0 for u in usages), (rp["name"], usages)


def test_killed_agent_goes_down(env):
    osc, _, agents = env
    agents["compute2"].stop(sig=9)
    states = wait(lambda: {s["Host"]: s["State"] for s in osc.json(
        "compute", "service", "list", "--service", "nova-compute")}.get("compute2") == "down"
        and True, "compute2 down", timeout=DOWN_AFTER * 5)
    assert states
    agents["compute2"].start()
    wait(lambda: {s["Host"]: s["State"] for s in osc.json(
        "compute", "service", "list", "--service", "nova-compute")}.get("compute2") == "up",
        "compute2 up again")
