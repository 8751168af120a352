"""Identity over HTTP and openstacksdk: discovery, token API, errors, policy files."""

from __future__ import annotations

import time

import openstack
import openstack.config
import openstack.connection
import pytest
import requests

from tests.conftest import user_auth


@pytest.fixture(scope="module")
def admin(cloud):
    config = openstack.config.OpenStackConfig(config_files=[str(cloud.clouds_yaml)],
                                              load_envvars=False)
    return openstack.connection.Connection(config=config.get_one("cloudd"))


@pytest.fixture(scope="module")
def token(cloud):
    auth = cloud.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"name": "Default"}, "password": auth["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = requests.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def identity_error(r: requests.Response, status: int) -> dict:
    """Assert Keystone's error body and return its error object."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["title"] and err["message"]
    assert "Traceback" not in r.text
    return err


def test_version_discovery(cloud):
    r = requests.get(cloud.url + "/identity")
    assert r.status_code == 300
    values = r.json()["versions"]["values"]
    assert values[0]["id"].startswith("v3.") and values[0]["status"] == "stable"
    assert values[0]["links"][0]["href"] == cloud.url + "/identity/v3/"
    v3 = requests.get(cloud.url + "/identity/v3")
    assert v3.status_code == 200 and v3.json()["version"]["id"] == values[0]["id"]
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_validate_check_and_revoke(cloud, token):
    url = cloud.url + "/identity/v3/auth/tokens"
    auth = cloud.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"id": "default"}, "password": auth["password"]}}},
        "scope": {"system": {"all": True}}}}
    r = requests.post(url + "?nocatalog", json=body)
    assert r.status_code == 201 and "catalog" not in r.json()["token"]
    assert r.json()["token"]["system"] == {"all": True}
    subject = r.headers["X-Subject-Token"]
    headers = {"X-Auth-Token": token, "X-Subject-Token": subject}
    shown = requests.get(url, headers=headers)
    assert shown.status_code == 200
    assert {r["name"] for r in shown.json()["token"]["roles"]} >= {"admin", "member", "reader"}
    assert requests.head(url, headers=headers).status_code == 200
    assert requests.delete(url, headers=headers).status_code == 204
    assert requests.head(url, headers=headers).status_code == 404
    assert identity_error(requests.get(url, headers=headers), 404)
    r = requests.get(cloud.url + "/identity/v3/projects", headers={"X-Auth-Token": subject})
    identity_error(r, 401)


def test_auth_lists(cloud, token):
    h = {"X-Auth-Token": token}
    projects = requests.get(cloud.url + "/identity/v3/auth/projects", headers=h).json()
    assert "admin" in {p["name"] for p in projects["projects"]}
    system = requests.get(cloud.url + "/identity/v3/auth/system", headers=h).json()
    assert system["system"] == [{"all": True}]
    catalog = requests.get(cloud.url + "/identity/v3/auth/catalog", headers=h).json()
    assert {s["type"] for s in catalog["catalog"]} >= {"identity", "compute"}


@pytest.mark.parametrize("case", ["malformed", "content-type", "not-object", "bad-field"])
def test_bad_input_is_400_and_changes_nothing(cloud, token, case):
    url = cloud.url + "/identity/v3/projects"
    h = {"X-Auth-Token": token}
    before = requests.get(url, headers=h).json()["projects"]
    if case == "malformed":
        r = requests.post(url, data=b'{"project": {"name": "x"', headers={
            **h, "Content-Type": "application/json"})
    elif case == "content-type":
        r = requests.post(url, data=b'{"project": {"name": "x"}}', headers={
            **h, "Content-Type": "text/plain"})
    elif case == "not-object":
        r = requests.post(url, json=["project"], headers=h)
    else:
        r = requests.post(url, json={"project": {"name": 42}}, headers=h)
    identity_error(r, 400)
    assert requests.get(url, headers=h).json()["projects"] == before


def test_oversized_unknown_and_wrong_method(cloud, token):
    h = {"X-Auth-Token": token}
    big = b'{"project": {"name": "x", "description": "' + b"a" * 2_000_000 + b'"}}'
    r = requests.post(cloud.url + "/identity/v3/projects", data=big,
                      headers={**h, "Content-Type": "application/json"})
    identity_error(r, 413)
    identity_error(requests.get(cloud.url + "/identity/v3/nothing-here", headers=h), 404)
    r = requests.put(cloud.url + "/identity/v3/projects", json={}, headers=h)
    identity_error(r, 405)
    assert r.headers["x-openstack-request-id"].startswith("req-")
    names = {p["name"] for p in requests.get(cloud.url + "/identity/v3/projects",
                                             headers=h).json()["projects"]}
    assert "x" not in names


def test_no_token_is_401_with_www_authenticate(cloud):
    r = requests.get(cloud.url + "/identity/v3/projects")
    identity_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_openstacksdk_identity(admin):
    project = admin.identity.create_project(name="sdk-project", domain_id="default")
    user = admin.identity.create_user(name="sdk-user", password="sdk-pw",
                                      default_project_id=project.id)
    member = admin.identity.find_role("member")
    admin.identity.assign_project_role_to_user(project, user, member)
    assert admin.identity.validate_user_has_project_role(project, user, member)
    assert "sdk-project" in {p.name for p in admin.identity.projects()}
    admin.identity.unassign_project_role_from_user(project, user, member)
    assert not admin.identity.validate_user_has_project_role(project, user, member)
    admin.identity.delete_user(user)
    admin.identity.delete_project(project)
    assert admin.identity.find_project("sdk-project") is None


def test_policy_file_overrides_a_rule(cloud, osc):
    osc.json("project", "create", "pol-demo")
    osc.json("user", "create", "--password", "dora-pw", "dora")
    osc.run("role", "add", "--project", "pol-demo", "--user", "dora", "reader")
    dora = user_auth("dora", "dora-pw", "pol-demo")
    denied = osc.run("user", "list", auth=dora, check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    policy = cloud.data_dir / "policy.yaml"
    policy.write_text('"identity:list_users": "role:reader"\n')
    try:
        time.sleep(1.1)  # the enforcer re-reads the file at most once a second
        names = {u["Name"] for u in osc.json("user", "list", auth=dora)}
        assert {"admin", "dora"} <= names
    finally:
        policy.unlink()
    time.sleep(1.1)
    assert osc.run("user", "list", auth=dora, check=False).returncode != 0


def _auth_body(cloud, scope=None, methods_token=None):
    auth = cloud.admin_auth()
    if methods_token:
        ident = {"methods": ["token"], "token": {"id": methods_token}}
    else:
        ident = {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": "Default"},
            "password": auth["password"]}}}
    body = {"auth": {"identity": ident}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def test_unscoped_domain_scoped_and_rescoped_tokens(cloud, token):
    url = cloud.url + "/identity/v3/auth/tokens"
    unscoped = requests.post(url, json=_auth_body(cloud, "unscoped"))
    assert unscoped.status_code == 201
    body = unscoped.json()["token"]
    assert "project" not in body and "roles" not in body and "catalog" not in body
    # Rescope the unscoped token to a project with the token method.
    rescoped = requests.post(url, json=_auth_body(
        cloud, {"project": {"name": "admin", "domain": {"id": "default"}}},
        methods_token=unscoped.headers["X-Subject-Token"]))
    assert rescoped.status_code == 201
    body = rescoped.json()["token"]
    assert body["project"]["name"] == "admin" and set(body["methods"]) == {"password", "token"}
    assert body["audit_ids"][1] == unscoped.json()["token"]["audit_ids"][0]
    # No role on the domain yet: a domain-scoped token is refused.
    h = {"X-Auth-Token": token}
    assert requests.post(url, json=_auth_body(cloud, {"domain": {"id": "default"}})
                         ).status_code == 401
    user_id = rescoped.json()["token"]["user"]["id"]
    reader = requests.get(cloud.url + "/identity/v3/roles?name=reader", headers=h).json()
    grant = f"{cloud.url}/identity/v3/domains/default/users/{user_id}/roles/" \
            f"{reader['roles'][0]['id']}"
    assert requests.put(grant, headers=h).status_code == 204
    try:
        scoped = requests.post(url, json=_auth_body(cloud, {"domain": {"name": "Default"}}))
        assert scoped.status_code == 201
        assert scoped.json()["token"]["domain"] == {"id": "default", "name": "Default"}
        assert [r["name"] for r in scoped.json()["token"]["roles"]] == ["reader"]
    finally:
        assert requests.delete(grant, headers=h).status_code == 204


def test_access_log_has_a_line_per_request_and_no_secrets(cloud, token):
    marker = f"/identity/v3/projects/log-marker-{time.time_ns()}"
    r = requests.get(cloud.url + marker, headers={"X-Auth-Token": token})
    assert r.status_code == 404
    rid = r.headers["x-openstack-request-id"]
    lines = [line for line in cloud.log_text().splitlines() if rid in line]
    assert len(lines) == 1
    assert "status=404" in lines[0] and "method=GET" in lines[0] and marker in lines[0]
    log = cloud.log_text()
    assert token not in log
    password = cloud.admin_auth()["password"]
    # Only the one line printed to the terminal at bootstrap shows the password.
    assert [line for line in log.splitlines() if password in line] == [
        next(line for line in log.splitlines() if "Admin password" in line)]
