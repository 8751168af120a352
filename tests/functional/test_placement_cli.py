"""Placement through the real `openstack` CLI with the osc-placement plugin.

Keystone tokens and policy here (no noauth), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import user_auth

V = ("--os-placement-api-version", "1.39")


@pytest.fixture(scope="module")
def pl(osc):
    def run(*args, **kw):
        return osc.json(*args, *V, **kw)
    return run


def test_resource_provider_lifecycle(osc, pl):
    rp = pl("resource", "provider", "create", "cli-node-1")
    assert rp["name"] == "cli-node-1" and rp["generation"] == 0
    child = pl("resource", "provider", "create", "cli-node-1-numa0",
               "--parent-provider", rp["uuid"])
    assert child["root_provider_uuid"] == rp["uuid"]
    assert child["parent_provider_uuid"] == rp["uuid"]
    shown = pl("resource", "provider", "show", rp["uuid"])
    assert shown["name"] == "cli-node-1"
    names = {p["name"] for p in pl("resource", "provider", "list")}
    assert {"cli-node-1", "cli-node-1-numa0"} <= names
    in_tree = pl("resource", "provider", "list", "--in-tree", rp["uuid"])
    assert {p["uuid"] for p in in_tree} == {rp["uuid"], child["uuid"]}
    # A parent with children cannot go first.
    busy = osc.run("resource", "provider", "delete", rp["uuid"], *V, check=False)
    assert busy.returncode != 0 and "409" in busy.stderr
    osc.run("resource", "provider", "delete", child["uuid"], *V)
    osc.run("resource", "provider", "delete", rp["uuid"], *V)
    assert "cli-node-1" not in {p["name"] for p in pl("resource", "provider", "list")}


def test_inventory_traits_classes_candidates_and_allocations(osc, pl):
    rp = pl("resource", "provider", "create", "cli-node-2")
    inv = pl("resource", "provider", "inventory", "set", rp["uuid"],
             "--resource", "VCPU=8", "--resource", "MEMORY_MB=16384",
             "--resource", "VCPU:allocation_ratio=4.0", "--resource", "DISK_GB=100")
    by_class = {row["resource_class"]: row for row in inv}
    assert by_class["VCPU"]["total"] == 8 and by_class["VCPU"]["allocation_ratio"] == 4.0
    listed = {row["resource_class"] for row in pl("resource", "provider", "inventory",
                                                  "list", rp["uuid"])}
    assert listed == {"VCPU", "MEMORY_MB", "DISK_GB"}

    osc.run("resource", "class", "create", "CUSTOM_CLI_GPU", *V)
    assert "CUSTOM_CLI_GPU" in {c["name"] for c in pl("resource", "class", "list")}
    osc.run("trait", "create", "CUSTOM_CLI_FAST", *V)
    assert "CUSTOM_CLI_FAST" in {t["name"] for t in pl("trait", "list")}
    traits = pl("resource", "provider", "trait", "set", rp["uuid"],
                "--trait", "CUSTOM_CLI_FAST", "--trait", "HW_CPU_X86_AVX2")
    assert {t["name"] for t in traits} == {"CUSTOM_CLI_FAST", "HW_CPU_X86_AVX2"}
    assert {t["name"] for t in pl("resource", "provider", "trait", "list", rp["uuid"])} \
        == {"CUSTOM_CLI_FAST", "HW_CPU_X86_AVX2"}

    cands = pl("allocation", "candidate", "list", "--resource", "VCPU=2",
               "--resource", "MEMORY_MB=2048", "--required", "CUSTOM_CLI_FAST")
    assert {c["resource provider"] for c in cands} == {rp["uuid"]}
    none = pl("allocation", "candidate", "list", "--resource", "VCPU=2",
              "--forbidden", "CUSTOM_CLI_FAST")
    assert rp["uuid"] not in {c["resource provider"] for c in none}

    consumer = str(uuid.uuid4())
    project, user = str(uuid.uuid4()), str(uuid.uuid4())
    alloc = pl("resource", "provider", "allocation", "set", consumer,
               "--allocation", f"rp={rp['uuid']},VCPU=2,MEMORY_MB=2048",
               "--project-id", project, "--user-id", user, "--consumer-type", "INSTANCE")
    assert alloc[0]["resources"] == {"VCPU": 2, "MEMORY_MB": 2048}
    shown = pl("resource", "provider", "allocation", "show", consumer)
    assert shown[0]["resource_provider"] == rp["uuid"]
    usage = pl("resource", "provider", "usage", "show", rp["uuid"])
    assert {u["resource_class"]: u["usage"] for u in usage}["VCPU"] == 2
    # Over capacity (8 * 4.0 = 32 VCPU) is refused and changes nothing.
    over = osc.run("resource", "provider", "allocation", "set", str(uuid.uuid4()), *V,
                   "--allocation", f"rp={rp['uuid']},VCPU=31",
                   "--project-id", project, "--user-id", user, "--consumer-type", "INSTANCE",
                   check=False)
    assert over.returncode != 0 and "409" in over.stderr
    osc.run("resource", "provider", "allocation", "unset", consumer, *V)
    assert pl("resource", "provider", "allocation", "show", consumer) == []
    usage = pl("resource", "provider", "usage", "show", rp["uuid"])
    assert {u["resource_class"]: u["usage"] for u in usage}["VCPU"] == 0


def test_member_cannot_write_placement(osc, pl):
    osc.json("project", "create", "pl-demo")
    osc.json("user", "create", "--password", "erin-pw", "erin")
    osc.run("role", "add", "--project", "pl-demo", "--user", "erin", "member")
    res = osc.run("resource", "provider", "create", "not-allowed", *V,
                  auth=user_auth("erin", "erin-pw", "pl-demo"), check=False)
    assert res.returncode != 0 and "403" in res.stderr
    assert "not-allowed" not in {p["name"] for p in pl("resource", "provider", "list")}
