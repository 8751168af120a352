"""Visibility and sharing between projects, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.image.conftest import call, create, patch, upload

pytestmark = pytest.mark.asyncio
OWNER, OTHER = "alice:p1", "bob:p2"


async def listed(api, token: str, query: str = "") -> set[str]:
    _, body = await call(api, "GET", "/v2/images" + query, token=token, status=200)
    return {i["name"] for i in body["images"]}


async def test_visibility_between_projects(api):
    for vis in ("private", "shared", "community"):
        await create(api, token=OWNER, name=vis, visibility=vis)
    await create(api, name="public", visibility="public")         # admin only
    assert await listed(api, OWNER) == {"private", "shared", "community", "public"}
    # Another project sees public images; community ones only when asked for.
    assert await listed(api, OTHER) == {"public"}
    assert await listed(api, OTHER, "?visibility=community") == {"community"}
    assert await listed(api, OWNER, "?visibility=private") == {"private"}
    _, body = await call(api, "GET", "/v2/images?visibility=private", token=OTHER, status=200)
    assert body["images"] == []
    # A private image is not found at all by another project, nor changeable.
    _, mine = await call(api, "GET", "/v2/images?name=private", token=OWNER, status=200)
    pid = mine["images"][0]["id"]
    await call(api, "GET", f"/v2/images/{pid}", token=OTHER, status=404)
    await patch(api, pid, [{"op": "replace", "path": "/name", "value": "x"}], token=OTHER,
                status=404)
    await call(api, "DELETE", f"/v2/images/{pid}", token=OTHER, status=404)
    # A plain user cannot publicize; community is allowed.
    await patch(api, pid, [{"op": "replace", "path": "/visibility", "value": "public"}],
                token=OWNER, status=403)
    await patch(api, pid, [{"op": "replace", "path": "/visibility", "value": "community"}],
                token=OWNER)
    # The admin sees everything (but community images of others only when asked).
    assert {"private", "shared", "public"} <= await listed(api, "admin", "?visibility=all")
    # Public images can be read but not changed by other projects.
    _, pub = await call(api, "GET", "/v2/images?name=public", token=OTHER, status=200)
    pub_id = pub["images"][0]["id"]
    await call(api, "GET", f"/v2/images/{pub_id}", token=OTHER, status=200)
    await patch(api, pub_id, [{"op": "replace", "path": "/name", "value": "x"}], token=OTHER,
                status=403)


async def test_sharing_with_members(api):
    image = await create(api, token=OWNER, name="shared-img", visibility="shared")
    iid = image["id"]
    await upload(api, iid, b"shared data", token=OWNER)
    await call(api, "GET", f"/v2/images/{iid}", token=OTHER, status=404)
    _, member = await call(api, "POST", f"/v2/images/{iid}/members", {"member": "p2"},
                           token=OWNER, status=200)
    assert member["member_id"] == "p2" and member["status"] == "pending"
    assert member["schema"] == "/v2/schemas/member"
    await call(api, "POST", f"/v2/images/{iid}/members", {"member": "p2"}, token=OWNER,
               status=409)
    await call(api, "POST", f"/v2/images/{iid}/members", {"member": "p3"}, token=OWNER,
               status=200)
    # Pending: visible by id, listed only with member_status.
    await call(api, "GET", f"/v2/images/{iid}", token=OTHER, status=200)
    assert await listed(api, OTHER) == set()
    assert await listed(api, OTHER, "?member_status=pending") == {"shared-img"}
    # Only the member changes its status; the owner cannot.
    await call(api, "PUT", f"/v2/images/{iid}/members/p2", {"status": "accepted"},
               token=OWNER, status=403)
    await call(api, "PUT", f"/v2/images/{iid}/members/p2", {"status": "bogus"},
               token=OTHER, status=400)
    _, accepted = await call(api, "PUT", f"/v2/images/{iid}/members/p2",
                             {"status": "accepted"}, token=OTHER, status=200)
    assert accepted["status"] == "accepted"
    assert await listed(api, OTHER) == {"shared-img"}
    resp = await api.get(f"/v2/images/{iid}/file",
                         headers={"X-Auth-Token": OTHER, "X-Roles": "member,reader"})
    assert resp.status == 200 and await resp.read() == b"shared data"
    # The owner sees every member; a member sees only itself.
    _, members = await call(api, "GET", f"/v2/images/{iid}/members", token=OWNER, status=200)
    assert {m["member_id"] for m in members["members"]} == {"p2", "p3"}
    assert members["schema"] == "/v2/schemas/members"
    _, members = await call(api, "GET", f"/v2/images/{iid}/members", token=OTHER, status=200)
    assert [m["member_id"] for m in members["members"]] == ["p2"]
    await call(api, "GET", f"/v2/images/{iid}/members/p3", token=OTHER, status=404)
    await call(api, "GET", f"/v2/images/{iid}/members/p2", token=OTHER, status=200)
    # A member cannot modify the image, nor remove members.
    await patch(api, iid, [{"op": "replace", "path": "/name", "value": "x"}], token=OTHER,
                status=403)
    await call(api, "DELETE", f"/v2/images/{iid}/members/p2", token=OTHER, status=403)
    # The owner removes the member: the image is gone for it.
    await call(api, "DELETE", f"/v2/images/{iid}/members/p2", token=OWNER, status=204)
    await call(api, "GET", f"/v2/images/{iid}", token=OTHER, status=404)
    # Only shared images have members.
    private = await create(api, token=OWNER, name="priv", visibility="private")
    await call(api, "POST", f"/v2/images/{private['id']}/members", {"member": "p2"},
               token=OWNER, status=403)


async def test_roles_are_required(api):
    """Glance's secure-RBAC defaults: a user with no role on its project can
    neither list nor create images."""
    no_role = {"X-Roles": ""}
    await call(api, "GET", "/v2/images", token=OWNER, headers=no_role, status=403)
    _, err = await call(api, "POST", "/v2/images", {"name": "x"}, token=OWNER,
                        headers=no_role, status=403)
    assert "add_image" in err["message"]
    reader = {"X-Roles": "reader"}
    await call(api, "GET", "/v2/images", token=OWNER, headers=reader, status=200)
    await call(api, "POST", "/v2/images", {"name": "x"}, token=OWNER, headers=reader,
               status=403)
