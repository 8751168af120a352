"""Identity through the real `openstack` CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import user_auth


@pytest.fixture(scope="module")
def demo(osc):
    """A project 'demo' with a member 'alice' (password 'alice-pw')."""
    project = osc.json("project", "create", "demo", "--description", "demo project")
    user = osc.json("user", "create", "--password", "alice-pw", "--project", "demo", "alice")
    osc.run("role", "add", "--project", "demo", "--user", "alice", "member")
    return {"project": project, "user": user}


def test_token_issue_and_catalog(osc, cloud):
    token = osc.json("token", "issue")
    assert token["id"] and token["project_id"] and token["user_id"]
    catalog = osc.json("catalog", "list")
    types = {entry["Type"] for entry in catalog}
    assert {"identity", "compute", "placement", "image", "network",
            "block-storage", "volumev3"} <= types
    identity = next(e for e in catalog if e["Type"] == "identity")
    urls = {ep["url"] for ep in identity["Endpoints"]}
    assert urls == {cloud.url + "/identity"}
    interfaces = {ep["interface"] for ep in identity["Endpoints"]}
    assert interfaces == {"public", "internal", "admin"}


def test_token_revoke_makes_token_invalid(osc):
    token = osc.json("token", "issue")["id"]
    auth = {"auth_type": "token", "token": token}
    assert osc.json("project", "list", auth=auth)      # the token works
    osc.run("token", "revoke", token)
    res = osc.run("project", "list", auth=auth, check=False)
    assert res.returncode != 0
    assert "401" in res.stderr


def test_project_lifecycle(osc):
    created = osc.json("project", "create", "scratch", "--description", "temporary")
    assert created["name"] == "scratch" and created["domain_id"] == "default"
    shown = osc.json("project", "show", "scratch")
    assert shown["id"] == created["id"] and shown["description"] == "temporary"
    names = {p["Name"] for p in osc.json("project", "list")}
    assert {"admin", "service", "scratch"} <= names
    dup = osc.run("project", "create", "scratch", check=False)
    assert dup.returncode != 0 and "409" in dup.stderr
    osc.run("project", "delete", "scratch")
    names = {p["Name"] for p in osc.json("project", "list")}
    assert "scratch" not in names
    missing = osc.run("project", "show", "scratch", check=False)
    assert missing.returncode != 0


def test_user_password_change_and_delete(osc, demo):
    osc.json("user", "create", "--password", "first-pw", "bob")
    osc.run("role", "add", "--project", "demo", "--user", "bob", "reader")
    assert osc.json("token", "issue", auth=user_auth("bob", "first-pw"))["id"]
    osc.run("user", "set", "--password", "second-pw", "bob")
    old = osc.run("token", "issue", auth=user_auth("bob", "first-pw"), check=False)
    assert old.returncode != 0 and "401" in old.stderr
    assert osc.json("token", "issue", auth=user_auth("bob", "second-pw"))["id"]
    osc.run("user", "delete", "bob")
    gone = osc.run("token", "issue", auth=user_auth("bob", "second-pw"), check=False)
    assert gone.returncode != 0 and "401" in gone.stderr


def test_user_changes_own_password(osc, demo):
    osc.json("user", "create", "--password", "carol-1", "carol")
    osc.run("role", "add", "--project", "demo", "--user", "carol", "member")
    osc.run("user", "password", "set", "--original-password", "carol-1",
            "--password", "carol-2", auth=user_auth("carol", "carol-1"))
    assert osc.json("token", "issue", auth=user_auth("carol", "carol-2"))["id"]
    wrong = osc.run("user", "password", "set", "--original-password", "nope",
                    "--password", "carol-3", auth=user_auth("carol", "carol-2"), check=False)
    assert wrong.returncode != 0
    assert osc.json("token", "issue", auth=user_auth("carol", "carol-2"))["id"]


def test_role_add_remove_and_effective_assignments(osc, demo):
    rows = osc.json("role", "assignment", "list", "--effective", "--names",
                    "--user", "alice")
    roles = {(r["Role"], r["Project"]) for r in rows}
    # member implies reader: the effective list shows both.
    assert ("member", "demo@Default") in roles
    assert ("reader", "demo@Default") in roles
    direct = osc.json("role", "assignment", "list", "--names", "--user", "alice")
    assert {r["Role"] for r in direct} == {"member"}
    osc.run("role", "add", "--project", "demo", "--user", "alice", "manager")
    roles = {r["Role"] for r in osc.json("role", "assignment", "list", "--names",
                                         "--user", "alice", "--project", "demo")}
    assert roles == {"member", "manager"}
    osc.run("role", "remove", "--project", "demo", "--user", "alice", "manager")
    roles = {r["Role"] for r in osc.json("role", "assignment", "list", "--names",
                                         "--user", "alice", "--project", "demo")}
    assert roles == {"member"}


def test_member_cannot_create_project(osc, demo):
    res = osc.run("project", "create", "sneaky", auth=user_auth("alice", "alice-pw"),
                  check=False)
    assert res.returncode != 0
    assert "403" in res.stderr and "identity:create_project" in res.stderr
    names = {p["Name"] for p in osc.json("project", "list")}
    assert "sneaky" not in names


def test_wrong_password_is_401(osc, demo):
    res = osc.run("token", "issue", auth=user_auth("alice", "not-her-password"), check=False)
    assert res.returncode != 0 and "401" in res.stderr
    unknown = osc.run("token", "issue", auth=user_auth("nobody", "x"), check=False)
    assert unknown.returncode != 0 and "401" in unknown.stderr
    # Same words whether the user or the password was wrong.
    assert _reason(res.stderr) == _reason(unknown.stderr)


def _reason(stderr: str) -> str:
    return stderr.split("(Request-ID")[0].strip()


def test_application_credential_authenticates(osc, demo):
    alice = user_auth("alice", "alice-pw")
    cred = osc.json("application", "credential", "create", "ci-cred", auth=alice)
    assert cred["Secret"] and cred["Unrestricted"] is False
    assert {r["name"] for r in cred["Roles"]} >= {"member"}
    app_auth = {"auth_type": "v3applicationcredential",
                "application_credential_id": cred["ID"],
                "application_credential_secret": cred["Secret"]}
    token = osc.json("token", "issue", auth=app_auth)
    assert token["project_id"] == demo["project"]["id"]
    assert token["user_id"] == demo["user"]["id"]
    # Restricted by default: it cannot make more application credentials.
    more = osc.run("application", "credential", "create", "more", auth=app_auth, check=False)
    assert more.returncode != 0 and "403" in more.stderr
    bad = dict(app_auth, application_credential_secret="wrong")
    assert "401" in osc.run("token", "issue", auth=bad, check=False).stderr
    listed = osc.json("application", "credential", "list", auth=alice)
    assert [c["Name"] for c in listed] == ["ci-cred"]
    osc.run("application", "credential", "delete", "ci-cred", auth=alice)
    assert "401" in osc.run("token", "issue", auth=app_auth, check=False).stderr
