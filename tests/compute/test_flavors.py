"""Flavors, flavor access and extra specs through the Compute API."""

from __future__ import annotations

import pytest

from tests.compute.conftest import call

pytestmark = pytest.mark.asyncio
ALICE = "alice:p1"
BOB = "bob:p2"


async def _create(api, version="2.1", **extra):
    body = {"flavor": {"name": "f1", "ram": 256, "vcpus": 1, "disk": 1, **extra}}
    return await call(api, "POST", "/v2.1/flavors", body, version=version)


async def test_seed_flavors_and_detail_fields_by_version(api):
    _, body = await call(api, "GET", "/v2.1/flavors", token=ALICE, status=200)
    assert [f["name"] for f in body["flavors"]] == [
        "m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]
    assert set(body["flavors"][0]) == {"id", "name", "links"}
    _, body = await call(api, "GET", "/v2.1/flavors/1", token=ALICE, status=200)
    f = body["flavor"]
    assert (f["ram"], f["vcpus"], f["disk"], f["swap"]) == (512, 1, 1, "")
    assert f["OS-FLV-DISABLED:disabled"] is False and f["rxtx_factor"] == 1.0
    assert "description" not in f and "extra_specs" not in f
    assert f["links"][0]["href"].endswith("/v2.1/flavors/1")
    _, body = await call(api, "GET", "/v2.1/flavors/1", token=ALICE, version="2.75")
    f = body["flavor"]
    assert f["swap"] == 0 and f["description"] is None and f["extra_specs"] == {}
    _, body = await call(api, "GET", "/v2.1/flavors", token=ALICE, version="2.55")
    assert body["flavors"][0]["description"] is None


async def test_create_conflicts_validation_and_admin_only(api):
    resp, body = await _create(api, version="2.55", id=7, description="small one")
    assert resp.status == 200, body
    assert body["flavor"]["id"] == "7" and body["flavor"]["description"] == "small one"
    _, err = await _create(api, id="other")
    assert err == {"conflictingRequest": {
        "code": 409, "message": "Flavor with name f1 already exists."}}
    _, err = await call(api, "POST", "/v2.1/flavors",
                        {"flavor": {"name": "f2", "ram": 1, "vcpus": 1, "disk": 0, "id": "7"}},
                        status=409)
    assert err["conflictingRequest"]["message"] == "Flavor with ID 7 already exists."
    resp, body = await call(api, "POST", "/v2.1/flavors",
                            {"flavor": {"name": "auto", "ram": 1, "vcpus": 1, "disk": 0,
                                        "id": None}}, status=200)
    assert len(body["flavor"]["id"]) == 36
    for bad in ({"ram": 0}, {"vcpus": "x"}, {"disk": -1}, {"bogus": 1}):
        flavor = {"name": "bad", "ram": 1, "vcpus": 1, "disk": 0, **bad}
        _, err = await call(api, "POST", "/v2.1/flavors", {"flavor": flavor}, status=400)
        assert "badRequest" in err
    # description is not accepted before 2.55
    _, err = await _create(api, name="x", description="d")
    assert err["badRequest"]["code"] == 400
    _, err = await call(api, "POST", "/v2.1/flavors",
                        {"flavor": {"name": "mine", "ram": 1, "vcpus": 1, "disk": 0}},
                        token=ALICE, status=403)
    assert err["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed."
    await call(api, "DELETE", "/v2.1/flavors/7", token=ALICE, status=403)
    await call(api, "DELETE", "/v2.1/flavors/7", status=202)
    _, err = await call(api, "GET", "/v2.1/flavors/7", status=404)
    assert err["itemNotFound"]["message"] == "Flavor 7 could not be found."


async def test_update_description_only_from_2_55(api):
    await _create(api, id="u1")
    await call(api, "PUT", "/v2.1/flavors/u1", {"flavor": {"description": "d"}}, status=404)
    _, body = await call(api, "PUT", "/v2.1/flavors/u1", {"flavor": {"description": "new"}},
                         version="2.55", status=200)
    assert body["flavor"]["description"] == "new" and "extra_specs" not in body["flavor"]
    await call(api, "PUT", "/v2.1/flavors/u1", {"flavor": {"name": "n"}}, version="2.55",
               status=400)
    await call(api, "PUT", "/v2.1/flavors/nope", {"flavor": {"description": None}},
               version="2.55", status=404)


async def test_private_flavor_visibility_and_access(api):
    await _create(api, id="priv", **{"os-flavor-access:is_public": False})
    names = lambda body: {f["id"] for f in body["flavors"]}
    _, body = await call(api, "GET", "/v2.1/flavors", token=ALICE)
    assert "priv" not in names(body)
    await call(api, "GET", "/v2.1/flavors/priv", token=ALICE, status=404)
    _, body = await call(api, "GET", "/v2.1/flavors", status=200)       # admin: public only
    assert "priv" not in names(body)
    _, body = await call(api, "GET", "/v2.1/flavors?is_public=false", status=200)
    assert names(body) == {"priv"}
    _, body = await call(api, "GET", "/v2.1/flavors?is_public=None", status=200)
    assert len(body["flavors"]) == 6
    await call(api, "GET", "/v2.1/flavors?is_public=maybe", status=400)

    _, body = await call(api, "POST", "/v2.1/flavors/priv/action",
                         {"addTenantAccess": {"tenant": "p1"}}, status=200)
    assert body == {"flavor_access": [{"flavor_id": "priv", "tenant_id": "p1"}]}
    _, err = await call(api, "POST", "/v2.1/flavors/priv/action",
                        {"addTenantAccess": {"tenant": "p1"}}, status=409)
    assert "already exists" in err["conflictingRequest"]["message"]
    await call(api, "POST", "/v2.1/flavors/priv/action",
               {"addTenantAccess": {"tenant": "p2"}}, token=ALICE, status=403)
    _, body = await call(api, "GET", "/v2.1/flavors", token=ALICE)
    assert "priv" in names(body)
    await call(api, "GET", "/v2.1/flavors/priv", token=ALICE, status=200)
    await call(api, "GET", "/v2.1/flavors/priv", token=BOB, status=404)
    _, body = await call(api, "GET", "/v2.1/flavors/priv/os-flavor-access", status=200)
    assert body["flavor_access"] == [{"flavor_id": "priv", "tenant_id": "p1"}]
    _, err = await call(api, "GET", "/v2.1/flavors/1/os-flavor-access", status=404)
    assert err["itemNotFound"]["message"] == "Access list not available for public flavors."
    _, err = await call(api, "POST", "/v2.1/flavors/1/action",
                        {"addTenantAccess": {"tenant": "p1"}}, version="2.7", status=409)
    assert err["conflictingRequest"]["message"] == "Can not add access to a public flavor."

    await call(api, "POST", "/v2.1/flavors/priv/action",
               {"removeTenantAccess": {"tenant": "p1"}}, status=200)
    _, err = await call(api, "POST", "/v2.1/flavors/priv/action",
                        {"removeTenantAccess": {"tenant": "p1"}}, status=404)
    assert err["itemNotFound"]["message"] == \
        "Flavor access not found for priv / p1 combination."
    await call(api, "GET", "/v2.1/flavors/priv", token=ALICE, status=404)


async def test_filters_sorting_and_pagination(api):
    _, body = await call(api, "GET", "/v2.1/flavors/detail?minRam=4096&minDisk=80")
    assert [f["name"] for f in body["flavors"]] == ["m1.large", "m1.xlarge"]
    _, body = await call(api, "GET", "/v2.1/flavors?sort_key=memory_mb&sort_dir=desc")
    assert body["flavors"][0]["name"] == "m1.xlarge"
    _, body = await call(api, "GET", "/v2.1/flavors?limit=2", status=200)
    assert [f["id"] for f in body["flavors"]] == ["1", "2"]
    href = body["flavors_links"][0]["href"]
    assert body["flavors_links"][0]["rel"] == "next" and "marker=2" in href
    _, body = await call(api, "GET", "/v2.1/flavors/detail?limit=2&marker=4", status=200)
    assert [f["id"] for f in body["flavors"]] == ["5"] and "flavors_links" not in body
    await call(api, "GET", "/v2.1/flavors?marker=nope", status=400)
    await call(api, "GET", "/v2.1/flavors?minRam=big", status=400)
    await call(api, "GET", "/v2.1/flavors?sort_key=color", status=400)
    await call(api, "GET", "/v2.1/flavors?foo=1", status=200)
    await call(api, "GET", "/v2.1/flavors?foo=1", version="2.75", status=400)


async def test_extra_specs_crud_policy_and_validation(api):
    base = "/v2.1/flavors/1/os-extra_specs"
    _, body = await call(api, "POST", base, {"extra_specs": {"hw:cpu_policy": "dedicated",
                                                             "k2": 5}}, status=200)
    assert body == {"extra_specs": {"hw:cpu_policy": "dedicated", "k2": 5}}
    _, body = await call(api, "GET", base, token=ALICE, status=200)
    assert body == {"extra_specs": {"hw:cpu_policy": "dedicated", "k2": "5"}}
    _, body = await call(api, "GET", f"{base}/k2", token=ALICE, status=200)
    assert body == {"k2": "5"}
    await call(api, "PUT", f"{base}/k2", {"k2": "6"}, status=200)
    _, err = await call(api, "PUT", f"{base}/k2", {"k3": "6"}, status=400)
    assert err["badRequest"]["message"] == "Request body and URI mismatch"
    await call(api, "POST", base, {"extra_specs": {"a": "b"}}, token=ALICE, status=403)
    await call(api, "DELETE", f"{base}/k2", token=ALICE, status=403)
    await call(api, "DELETE", f"{base}/k2", status=200)
    _, err = await call(api, "GET", f"{base}/k2", status=404)
    assert err["itemNotFound"]["message"] == "Flavor 1 has no extra specs with key k2."
    await call(api, "POST", base, {"extra_specs": {"bad/key": "v"}}, status=400)
    await call(api, "POST", base, {"extra_specs": {"k": "x" * 256}}, status=400)
    # 2.86 validates keys in known namespaces; earlier versions do not.
    await call(api, "POST", base, {"extra_specs": {"hw:bogus": "1"}}, status=200)
    _, err = await call(api, "POST", base, {"extra_specs": {"hw:bogus": "1"}},
                        version="2.86", status=400)
    assert "does not appear to be a valid extra spec" in err["badRequest"]["message"]
    _, err = await call(api, "POST", base, {"extra_specs": {"hw:cpu_policy": "fast"}},
                        version="2.86", status=400)
    assert "is not one of" in err["badRequest"]["message"]
    await call(api, "POST", base, {"extra_specs": {
        "resources:VCPU": "2", "trait:HW_CPU_X86_AVX": "required", "custom": "x"}},
        version="2.86", status=200)
    await call(api, "POST", base, {"extra_specs": {"resources1:VCPU": "x"}},
               version="2.86", status=400)
    # 2.61 flavors show extra specs to readers
    _, body = await call(api, "GET", "/v2.1/flavors/1", token=ALICE, version="2.61")
    assert body["flavor"]["extra_specs"]["custom"] == "x"
    _, body = await call(api, "GET", "/v2.1/flavors/1", token=ALICE, version="2.61",
                         headers={"X-Roles": ""})
    assert "extra_specs" not in body["flavor"]


async def test_snapshot_and_get_visible(api):
    from cloudd.services.compute import flavor_store
    await _create(api, id="s1", **{"os-flavor-access:is_public": False})
    await call(api, "POST", "/v2.1/flavors/s1/os-extra_specs",
               {"extra_specs": {"hw:mem_page_size": "large"}}, status=200)
    async with api.cloud.db.read() as conn:
        snap = await flavor_store.snapshot(conn, "s1")
        assert await flavor_store.get_visible(conn, "s1", "p1", False) is None
        assert (await flavor_store.get_visible(conn, "s1", "p1", True)).name == "f1"
    assert snap == {"id": "s1", "name": "f1", "vcpus": 1, "memory_mb": 256, "root_gb": 1,
                    "ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "is_public": False,
                    "description": None, "extra_specs": {"hw:mem_page_size": "large"}}
