"""Validation is served from memory, yet every identity write through the API
is seen by the very next request: renames, removed grants, disabled projects
and users, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture(scope="module")
def api(cloud):
    auth = cloud.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"name": "Default"}, "password": auth["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = requests.post(cloud.url + "/identity/v3/auth/tokens?nocatalog", json=body)
    assert r.status_code == 201, r.text
    session = requests.Session()
    session.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
    base = cloud.url + "/identity/v3"

    def call(method: str, path: str, **kw) -> requests.Response:
        return session.request(method, base + path, **kw)

    call.base = base
    return call


def user_token(api, name: str, password: str, project_id: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"id": project_id}}}}
    r = requests.post(api.base + "/auth/tokens?nocatalog", json=body)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def test_identity_writes_are_seen_at_once(api):
    project = api("POST", "/projects", json={"project": {"name": "cachep"}}).json()["project"]
    user = api("POST", "/users", json={"user": {"name": "carol", "password": "carol-pw"}}
               ).json()["user"]
    roles = {r["name"]: r["id"] for r in api("GET", "/roles").json()["roles"]}
    grant = f"/projects/{project['id']}/users/{user['id']}/roles/{roles['member']}"
    assert api("PUT", grant).status_code == 204
    token = user_token(api, "carol", "carol-pw", project["id"])

    def as_carol() -> int:
        """Carol's own call (her token through the auth middleware and its cache)."""
        return requests.get(api.base + "/auth/projects",
                            headers={"X-Auth-Token": token}).status_code

    def validated() -> requests.Response:
        return api("GET", "/auth/tokens?nocatalog", headers={"X-Subject-Token": token})

    for _ in range(3):               # warm every cache
        assert as_carol() == 200
        assert validated().status_code == 200

    assert api("PATCH", f"/projects/{project['id']}",
               json={"project": {"name": "cachep2"}}).status_code == 200
    assert validated().json()["token"]["project"]["name"] == "cachep2"

    assert api("DELETE", grant).status_code == 204
    assert as_carol() == 401 and validated().status_code == 404
    assert api("PUT", grant).status_code == 204
    assert as_carol() == 200
    assert {r["name"] for r in validated().json()["token"]["roles"]} == {"member", "reader"}

    assert api("PATCH", f"/projects/{project['id']}",
               json={"project": {"enabled": False}}).status_code == 200
    assert as_carol() == 401 and validated().status_code == 404
    assert api("PATCH", f"/projects/{project['id']}",
               json={"project": {"enabled": True}}).status_code == 200
    assert as_carol() == 200

    assert api("PATCH", f"/users/{user['id']}",
               json={"user": {"enabled": False}}).status_code == 200
    assert as_carol() == 401 and validated().status_code == 404
    # Disabling revoked her tokens for good; a new one works once she is enabled.
    assert api("PATCH", f"/users/{user['id']}",
               json={"user": {"enabled": True}}).status_code == 200
    assert as_carol() == 401
    token = user_token(api, "carol", "carol-pw", project["id"])
    assert as_carol() == 200

    # Revoking the token itself, while the middleware has it cached.
    assert api("DELETE", "/auth/tokens", headers={"X-Subject-Token": token}
               ).status_code == 204
    assert as_carol() == 401


def test_implied_role_changes_are_seen_at_once(api):
    roles = {r["name"]: r["id"] for r in api("GET", "/roles").json()["roles"]}
    project = api("POST", "/projects", json={"project": {"name": "cachei"}}).json()["project"]
    user = api("POST", "/users", json={"user": {"name": "dave", "password": "dave-pw"}}
               ).json()["user"]
    assert api("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/"
                      f"{roles['service']}").status_code == 204
    token = user_token(api, "dave", "dave-pw", project["id"])

    def role_names() -> set[str]:
        r = api("GET", "/auth/tokens?nocatalog", headers={"X-Subject-Token": token})
        assert r.status_code == 200, r.text
        return {x["name"] for x in r.json()["token"]["roles"]}

    assert role_names() == {"service"}
    implies = f"/roles/{roles['service']}/implies/{roles['reader']}"
    assert api("PUT", implies).status_code == 201
    assert role_names() == {"service", "reader"}
    assert api("DELETE", implies).status_code == 204
    assert role_names() == {"service"}
