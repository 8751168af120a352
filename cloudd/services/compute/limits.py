"""GET /limits: the caller's absolute limits and usage (Nova's limits.py).

Rate limits are always empty. Network limits (floating IPs, security groups)
go from 2.36, personality limits from 2.57, maxImageMeta from 2.39. An admin
may ask for another project with ?tenant_id=.
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import common, quota_store
from cloudd.services.compute.policies import ADMIN, ANY

NAMES = {
    "ram": ["maxTotalRAMSize"], "instances": ["maxTotalInstances"],
    "cores": ["maxTotalCores"], "key_pairs": ["maxTotalKeypairs"],
    "floating_ips": ["maxTotalFloatingIps"],
    "metadata_items": ["maxServerMeta", "maxImageMeta"],
    "injected_files": ["maxPersonality"],
    "injected_file_content_bytes": ["maxPersonalitySize"],
    "security_groups": ["maxSecurityGroups"],
    "security_group_rules": ["maxSecurityGroupRules"],
    "server_groups": ["maxServerGroups"], "server_group_members": ["maxServerGroupMembers"],
}
USED = {"totalRAMUsed": "ram", "totalCoresUsed": "cores",
        "totalInstancesUsed": "instances", "totalFloatingIpsUsed": "floating_ips",
        "totalSecurityGroupsUsed": "security_groups",
        "totalServerGroupsUsed": "server_groups"}
V236 = ["floating_ips", "security_groups", "security_group_rules"]
V257 = V236 + ["injected_files", "injected_file_content_bytes"]


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize("os_compute_api:limits", {})
    project_id = ctx.project_id
    if "tenant_id" in request.query:
        project_id = request.query["tenant_id"]
        ctx.authorize("os_compute_api:limits:other_project", {})
    if common.at_least(request, 2, 57):
        hidden = V257
    elif common.at_least(request, 2, 36):
        hidden = V236
    else:
        hidden = []
    image_meta = not common.at_least(request, 2, 39)
    async with common.cloud(request).db.read() as conn:
        limits = await quota_store.limits_for(conn, common.cloud(request).config, project_id)
        used = await quota_store.usage(conn, project_id)
    absolute: dict[str, int] = {}
    for resource, names in NAMES.items():
        if resource in hidden:
            continue
        for name in names:
            if name != "maxImageMeta" or image_meta:
                absolute[name] = limits[resource]
    for name, resource in USED.items():
        if resource not in hidden:
            absolute[name] = used.get(resource, 0)
    return web.json_response({"limits": {"rate": [], "absolute": absolute}})


ROUTES = {"/limits": {"GET": (index, None)}}

POLICIES = {
    "os_compute_api:limits": ANY,
    "os_compute_api:limits:other_project": ADMIN,
}
