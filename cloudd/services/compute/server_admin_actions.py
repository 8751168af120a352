"""More server actions: os-resetState, migrate / os-migrateLive, and
addSecurityGroup / removeSecurityGroup (server_actions.action dispatches
here for the names in ACTIONS).

os-resetState (admin) sets vm_state to active or error and clears
task_state, recording a "resetState" instance action; a task still running
for the server goes on (as Nova's compute does). Cold and live migration are
not implemented: after the lookup (404) and policy (403) they answer 501.
Security groups are names kept in the server's request spec (the views show
them) and, with the network service, groups of every port of the server
(the hosts re-apply the rules); removing the last one leaves the server with
none, and the server views then show no ``security_groups``.
"""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers, states, tasks
from cloudd.services.compute.policies import ADMIN, PROJECT_MEMBER_OR_ADMIN
from cloudd.web.errors import ApiError

ADMIN_ACTIONS = "os_compute_api:os-admin-actions:%s"
MIGRATE = "os_compute_api:os-migrate-server:%s"
SECGROUPS = "os_compute_api:os-security-groups:%s"
NOT_SUPPORTED = "The requested functionality is not supported."


def _bad(field: str, value, why: str) -> ApiError:
    return ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. {why}")


def _only_key(body: dict, name: str) -> None:
    extra = sorted(set(body) - {name})
    if extra:
        raise _bad("body", body, f"Additional properties are not allowed ('{extra[0]}' was "
                                 "unexpected)")


async def reset_state(request: web.Request, uuid: str, body: dict) -> web.Response:
    _only_key(body, "os-resetState")
    spec = body["os-resetState"]
    if not isinstance(spec, dict):
        raise _bad("os-resetState", spec, f"{spec!r} is not of type 'object'")
    if "state" not in spec:
        raise _bad("os-resetState", spec, "'state' is a required property")
    extra = sorted(set(spec) - {"state"})
    if extra:
        raise _bad("os-resetState", spec, f"Additional properties are not allowed "
                                          f"('{extra[0]}' was unexpected)")
    if spec["state"] not in ("active", "error"):
        raise _bad("state", spec["state"], f"{spec['state']!r} is not one of "
                                           "['active', 'error']")
    vm_state = states.ACTIVE if spec["state"] == "active" else states.ERROR
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(ADMIN_ACTIONS % "reset_state", {"project_id": row.project_id})
        await tasks.record_action(conn, instance_uuid=uuid, action="resetState",
                                  request_id=ctx.request_id, project_id=ctx.project_id,
                                  user_id=ctx.user_id)
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
            vm_state=vm_state, task_state=None, updated_at=tasks.utcnow()))
    return web.Response(status=202)


def _migration(rule_for):
    async def handler(request: web.Request, uuid: str, body: dict) -> web.Response:
        ctx = common.context(request)
        async with common.cloud(request).db.read() as conn:
            row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(rule_for(body), {"project_id": row.project_id})
        raise ApiError(501, NOT_SUPPORTED)
    return handler


def _migrate_rule(body: dict) -> str:
    spec = body.get("migrate")
    return MIGRATE % ("migrate:host" if isinstance(spec, dict) and spec.get("host")
                      else "migrate")


def _live_rule(body: dict) -> str:
    spec = body.get("os-migrateLive")
    return MIGRATE % ("migrate_live:host" if isinstance(spec, dict) and spec.get("host")
                      else "migrate_live")


def _group_name(body: dict, action: str) -> str:
    _only_key(body, action)
    spec = body[action]
    if not isinstance(spec, dict):
        raise _bad(action, spec, f"{spec!r} is not of type 'object'")
    if "name" not in spec:
        raise _bad(action, spec, "'name' is a required property")
    extra = sorted(set(spec) - {"name"})
    if extra:
        raise _bad(action, spec, f"Additional properties are not allowed ('{extra[0]}' "
                                 "was unexpected)")
    name = spec["name"]
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "Security group name cannot be empty")
    return name


async def _ports_groups(cloud, conn, row, name: str, add: bool) -> None:
    """As Nova's add_to_instance / remove_from_instance with Neutron: the group
    (by name or id, of the server's project) joins or leaves every port of the
    server, and the hosts re-apply the rules (``ports_changed``)."""
    import sqlalchemy as sa

    from cloudd.services.network import secgroups, sg_members
    G, P, PSG = t.security_group, t.port, t.port_security_group
    if add and name == "default":
        await secgroups.ensure_default(conn, row.project_id)
    found = await secgroups.groups(conn, sa.and_(
        G.c.project_id == row.project_id, sa.or_(G.c.id == name, G.c.name == name)))
    found = [g for g in found if g["id"] == name] or found
    if not found and not add:
        return                              # on no port either
    if not found:
        raise ApiError(404, f"Security group {name} is not found for project "
                            f"{row.project_id}")
    if len(found) > 1:
        raise ApiError(409, f"Multiple security_group matches found for name '{name}', "
                            "use an ID to be more specific.")
    group_id = found[0]["id"]
    ports = (await conn.execute(sa.select(P.c.id, P.c.port_security_enabled).where(
        P.c.device_id == row.uuid, P.c.device_owner.like("compute:%")))).all()
    # A server without ports yet (building) gets the groups of its spec when
    # its ports are made.
    for port in ports:
        have = (await conn.execute(sa.select(PSG.c.port_id).where(
            PSG.c.port_id == port.id, PSG.c.security_group_id == group_id))).first()
        if add and have is None:
            if not port.port_security_enabled:
                raise ApiError(400, "Network requires port_security_enabled and subnet "
                                    "associated in order to apply security groups.")
            await conn.execute(PSG.insert().values(port_id=port.id,
                                                   security_group_id=group_id))
        elif not add and have is not None:
            await conn.execute(PSG.delete().where(PSG.c.port_id == port.id,
                                                  PSG.c.security_group_id == group_id))
    await cloud.compute.ports_changed(conn, [row.uuid])
    await sg_members.members_changed(cloud, conn, [group_id])


def _security_group(action: str, rule: str, add: bool):
    async def handler(request: web.Request, uuid: str, body: dict) -> web.Response:
        name = _group_name(body, action)
        ctx = common.context(request)
        async with common.cloud(request).db.write() as conn:
            row = await instance_store.get(conn, uuid, servers.scope(request))
            ctx.authorize(SECGROUPS % rule, {"project_id": row.project_id})
            spec = instance_store.spec_of(row)
            groups = list(spec.get("security_groups", ["default"]))
            if add:
                groups = sorted({*groups, name})
            elif name not in groups:
                raise ApiError(400, f"Security group {name} not associated with the "
                                    f"instance {uuid}")
            else:
                groups.remove(name)
            cloud = common.cloud(request)
            if cloud.compute.network is not None:
                await _ports_groups(cloud, conn, row, name, add)
            spec["security_groups"] = groups
            await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
                request_spec=json.dumps(spec), updated_at=tasks.utcnow()))
        return web.Response(status=202)
    return handler


async def inject_network_info(request: web.Request, uuid: str, body: dict) -> web.Response:
    """Nova's injectNetworkInfo (admin): the host re-applies the server's
    network (a ``network_update`` with its vifs as they are now)."""
    _only_key(body, "injectNetworkInfo")
    ctx = common.context(request)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(ADMIN_ACTIONS % "inject_network_info", {"project_id": row.project_id})
        await cloud.compute.ports_changed(conn, [row.uuid])
    return web.Response(status=202)


ACTIONS = {
    "os-resetState": reset_state,
    "injectNetworkInfo": inject_network_info,
    "migrate": _migration(_migrate_rule),
    "os-migrateLive": _migration(_live_rule),
    "addSecurityGroup": _security_group("addSecurityGroup", "add", True),
    "removeSecurityGroup": _security_group("removeSecurityGroup", "remove", False),
}

ROUTES: dict = {}

POLICIES = {
    ADMIN_ACTIONS % "reset_state": ADMIN,
    ADMIN_ACTIONS % "inject_network_info": ADMIN,
    MIGRATE % "migrate": "rule:project_manager_or_admin",
    MIGRATE % "migrate:host": ADMIN,
    MIGRATE % "migrate_live": "rule:project_manager_or_admin",
    MIGRATE % "migrate_live:host": ADMIN,
    SECGROUPS % "add": PROJECT_MEMBER_OR_ADMIN,
    SECGROUPS % "remove": PROJECT_MEMBER_OR_ADMIN,
}
