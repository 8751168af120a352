"""Network quotas: Neutron's defaults, per-project limits, details, OverQuota."""

from __future__ import annotations

import pytest

from tests.network.conftest import call, error_of, network

pytestmark = pytest.mark.asyncio


async def test_defaults_update_details_and_over_quota(api):
    _, body = await call(api, "GET", "/v2.0/quotas/p1", token="u1:p1", status=200)
    assert body["quota"] == {"network": 100, "subnet": 100, "port": 500,
                             "security_group": 10, "security_group_rule": 100}
    kind, _ = await error_of(api, "PUT", "/v2.0/quotas/p1", {"quota": {"network": 1}},
                             token="u1:p1", status=403)
    assert kind == "PolicyNotAuthorized"
    await error_of(api, "GET", "/v2.0/quotas/p2", token="u1:p1", status=403)
    _, body = await call(api, "PUT", "/v2.0/quotas/p1", {"quota": {"network": 1}},
                         status=200)
    assert body["quota"]["network"] == 1
    await network(api, token="u1:p1")
    kind, msg = await error_of(api, "POST", "/v2.0/networks", {"network": {}},
                               token="u1:p1", status=409)
    assert kind == "OverQuota" and msg == "Quota exceeded for resources: ['network']."
    _, body = await call(api, "GET", "/v2.0/quotas/p1/details", token="u1:p1", status=200)
    assert body["quota"]["network"] == {"limit": 1, "used": 1, "reserved": 0}
    assert body["quota"]["security_group"]["used"] == 1      # the default group
    _, body = await call(api, "GET", "/v2.0/quotas", status=200)
    assert [q["project_id"] for q in body["quotas"]] == ["p1"]
    kind, _ = await error_of(api, "PUT", "/v2.0/quotas/p1", {"quota": {"router": 1}},
                             status=400)
    await call(api, "DELETE", "/v2.0/quotas/p1", status=204)
    _, body = await call(api, "GET", "/v2.0/quotas/p1", status=200)
    assert body["quota"]["network"] == 100
    _, body = await call(api, "GET", "/v2.0/quotas/p1/default", status=200)
    assert body["quota"]["port"] == 500


async def test_security_group_quota(make_api):
    api = await make_api({"quota_security_group": 2})
    await call(api, "POST", "/v2.0/security-groups", {"security_group": {"name": "a"}},
               token="u1:p1", status=201)                    # with default: 2
    _kind, msg = await error_of(api, "POST", "/v2.0/security-groups",
                               {"security_group": {"name": "b"}}, token="u1:p1", status=409)
    assert msg == "Quota exceeded for resources: ['security_group']."
