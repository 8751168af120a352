"""POST /servers/{id}/action: reboot, stop/start, pause/unpause,
suspend/resume, resize/confirm/revert, rebuild, lock/unlock, console output,
forceDelete and createImage (server_snapshot.py).

Each action that changes the guest checks Nova's guards (lock, host, vm and
task state, as compute/api.py's decorators do), then in one transaction
compare-and-swaps the instance's task_state, opens the task and records the
instance action; the conductor is woken after the commit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.compute import (
    agent_hub,
    boot_images,
    common,
    flavor_store,
    instance_store,
    quota_store,
    remote_consoles,
    server_admin_actions,
    server_create,
    server_schemas,
    servers,
    states,
    tasks,
)
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.server_schemas import validate
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

S = states
SERVERS = "os_compute_api:servers:%s"
ALLOW_REBOOT = (None, S.REBOOTING, S.REBOOT_PENDING, S.REBOOT_STARTED, S.RESUMING,
                S.REBOOTING_HARD, S.UNPAUSING, S.PAUSING, S.SUSPENDING)
_ANY = object()


def invalid_state(action: str, uuid: str, attr: str, state) -> ApiError:
    return ApiError(409, f"Cannot '{action}' instance {uuid} while it is in {attr} {state}")


@dataclass
class Guard:
    """One guarded action (compute/api.py's decorators and what it sets)."""
    action: str                          # the name in Nova's 409 text
    rule: str
    vm_states: tuple | object = _ANY
    task_states: tuple | object = (None,)
    launched: bool = True                # must_have_launched
    needs_host: bool = False             # check_instance_host
    new_task_state: str | None = None
    kind: str | None = None              # task kind (None: no task)
    instance_action: str | None = None
    payload: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    user_target: bool = False


def check(guard: Guard, row, is_admin: bool) -> None:
    if row.locked and not is_admin:
        raise ApiError(409, f"Instance {row.uuid} is locked")
    if guard.needs_host and not row.host:
        raise ApiError(409, f"Instance {row.uuid} is not ready")
    if guard.vm_states is not _ANY and row.vm_state not in guard.vm_states:
        raise invalid_state(guard.action, row.uuid, "vm_state", row.vm_state)
    if guard.task_states not in (_ANY, None) and row.task_state not in guard.task_states:
        raise invalid_state(guard.action, row.uuid, "task_state", row.task_state)
    if guard.launched and not row.launched_at:
        raise invalid_state(guard.action, row.uuid, "launched_at", None)


async def cas(conn, row, values: dict, action: str) -> None:
    """UPDATE the instance only if vm_state/task_state are still what was read."""
    i = t.instance
    task_cond = i.c.task_state.is_(None) if row.task_state is None \
        else i.c.task_state == row.task_state
    res = await conn.execute(update(i).where(
        i.c.uuid == row.uuid, i.c.deleted.is_(False), i.c.vm_state == row.vm_state,
        task_cond).values(**values, updated_at=tasks.utcnow()))
    if res.rowcount != 1:
        now = await instance_store.get(conn, row.uuid)
        raise invalid_state(action, row.uuid, "task_state", now.task_state)


async def run_guarded(request, uuid: str, guard: Guard, prepare=None) -> str | None:
    """Checks, CAS, task and action in one transaction; wakes the conductor.
    ``prepare(conn, row)`` may add checks/values/payload inside the transaction."""
    ctx = common.context(request)
    task_id = None
    async with common.cloud(request).db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        target = {"project_id": row.project_id}
        if guard.user_target:
            target["user_id"] = row.user_id
        ctx.authorize(guard.rule, target)
        check(guard, row, ctx.can("context_is_admin", {}))
        if prepare is not None:
            await prepare(conn, row)
        values = dict(guard.values)
        if guard.new_task_state is not None:
            values["task_state"] = guard.new_task_state
        if guard.kind == "reboot" and row.task_state is not None:
            await tasks.cancel_open(conn, uuid)       # a hard reboot takes over
        await cas(conn, row, values, guard.action)
        if guard.kind:
            task_id = await tasks.open_task(
                conn, instance_uuid=uuid, kind=guard.kind, payload=guard.payload,
                action=guard.instance_action, request_id=ctx.request_id,
                project_id=ctx.project_id, user_id=ctx.user_id,
                conflict_message=f"Cannot '{guard.action}' instance {uuid} while it is in "
                                 f"task_state {row.task_state}")
        elif guard.instance_action:
            await tasks.record_action(conn, instance_uuid=uuid, action=guard.instance_action,
                                      request_id=ctx.request_id, project_id=ctx.project_id,
                                      user_id=ctx.user_id)
    if task_id:
        common.compute(request).wake(task_id)
    return task_id


def accepted() -> web.Response:
    return web.Response(status=202)


# -- the actions -------------------------------------------------------------------

async def reboot(request, uuid, body):
    validate(body, server_schemas.REBOOT)
    hard = body["reboot"]["type"].upper() == "HARD"
    if hard:
        guard = Guard("reboot", SERVERS % "reboot",
                      (S.ACTIVE, S.STOPPED, S.PAUSED, S.SUSPENDED, S.ERROR), ALLOW_REBOOT,
                      new_task_state=S.REBOOTING_HARD)
    else:
        guard = Guard("reboot", SERVERS % "reboot", (S.ACTIVE,),
                      new_task_state=S.REBOOTING)
    guard.kind, guard.instance_action, guard.payload = "reboot", "reboot", {"hard": hard}
    await run_guarded(request, uuid, guard)
    return accepted()


def _simple(action, rule, vm_states, new_state, kind, *, needs_host=False,
            user_target=False, values=None):
    async def handler(request, uuid, body):
        await run_guarded(request, uuid, Guard(
            action, rule, vm_states, needs_host=needs_host, new_task_state=new_state,
            kind=kind, instance_action=kind, user_target=user_target,
            values=values or {}))
        return accepted()
    return handler


stop = _simple("stop", SERVERS % "stop", (S.ACTIVE, S.ERROR), S.POWERING_OFF, "stop",
               needs_host=True, user_target=True, values={"progress": 0})
start = _simple("start", SERVERS % "start", (S.STOPPED,), S.POWERING_ON, "start",
                needs_host=True, user_target=True)
pause = _simple("pause", "os_compute_api:os-pause-server:pause", (S.ACTIVE,), S.PAUSING,
                "pause")
unpause = _simple("unpause", "os_compute_api:os-pause-server:unpause", (S.PAUSED,),
                  S.UNPAUSING, "unpause")
suspend = _simple("suspend", "os_compute_api:os-suspend-server:suspend", (S.ACTIVE,),
                  S.SUSPENDING, "suspend")
resume = _simple("resume", "os_compute_api:os-suspend-server:resume", (S.SUSPENDED,),
                 S.RESUMING, "resume")


async def resize(request, uuid, body):
    validate(body, server_schemas.RESIZE)
    ctx = common.context(request)
    cfg = common.cloud(request).config
    flavor_id = server_create.id_from_href(body["resize"]["flavorRef"])
    guard = Guard("resize", SERVERS % "resize", (S.ACTIVE, S.STOPPED),
                  new_task_state=S.RESIZE_PREP, kind="resize", instance_action="resize",
                  user_target=True, values={"progress": 0})
    if "OS-DCF:diskConfig" in body["resize"]:
        guard.payload["disk_config"] = body["resize"]["OS-DCF:diskConfig"]

    async def prepare(conn, row):
        is_admin = ctx.can("context_is_admin", {})
        frow = await flavor_store.get_visible(conn, flavor_id, ctx.project_id, is_admin)
        if frow is None or frow.disabled:
            raise ApiError(400, f"Flavor {flavor_id} could not be found.")
        old = instance_store.flavor_of(row)
        if str(old.get("id")) == str(flavor_id):
            raise ApiError(400, "When resizing, instances must change flavor!")
        new = await flavor_store.snapshot(conn, flavor_id)
        if int(new["root_gb"]) == 0 and int(old.get("root_gb") or 0) != 0 and \
                not ctx.can(SERVERS % "create:zero_disk_flavor",
                            {"project_id": row.project_id}):
            raise ApiError(400, "Unable to resize disk down. Resize to zero disk flavor is "
                                "not allowed.")
        deltas = {"cores": int(new["vcpus"]) - int(old.get("vcpus") or 0),
                  "ram": int(new["memory_mb"]) - int(old.get("memory_mb") or 0)}
        if any(v > 0 for v in deltas.values()):
            await quota_store.enforce(conn, cfg, row.project_id, row.user_id, deltas)
        guard.payload["flavor"] = new
        guard.values["new_flavor"] = json.dumps(new)
        if "disk_config" in guard.payload:
            # Nova sets the instance's auto_disk_config as it accepts the resize.
            spec = instance_store.spec_of(row)
            spec["disk_config"] = guard.payload["disk_config"]
            guard.values["request_spec"] = json.dumps(spec)

    await run_guarded(request, uuid, guard, prepare)
    return accepted()


async def confirm_resize(request, uuid, body):
    await run_guarded(request, uuid, Guard(
        "confirmResize", SERVERS % "confirm_resize", (S.RESIZED,), kind="confirm_resize",
        instance_action="confirmResize"))
    return web.Response(status=204)


async def revert_resize(request, uuid, body):
    await run_guarded(request, uuid, Guard(
        "revertResize", SERVERS % "revert_resize", (S.RESIZED,),
        new_task_state=S.RESIZE_REVERTING, kind="revert_resize",
        instance_action="revertResize"))
    return accepted()


async def rebuild(request, uuid, body):
    ctx = common.context(request)
    cloud = common.cloud(request)
    mv = common.mv(request)
    validate(body, server_schemas.rebuild_schema(mv))
    spec = body["rebuild"]
    image_ref = spec["imageRef"]
    password = spec.get("adminPass") or server_create.generate_password()
    guard = Guard("rebuild", SERVERS % "rebuild", (S.ACTIVE, S.STOPPED, S.ERROR),
                  new_task_state=S.REBUILDING, kind="rebuild", instance_action="rebuild",
                  user_target=True,
                  payload={"image_ref": image_ref,
                           "preserve_ephemeral": server_schemas.as_bool(
                               spec.get("preserve_ephemeral", False))},
                  values={"image_ref": image_ref, "progress": 0})
    values = guard.values
    if "name" in spec:
        values["display_name"] = spec["name"].strip()
    if "description" in spec:
        values["description"] = spec["description"]
    if "accessIPv4" in spec:
        values["access_ip_v4"] = server_schemas.access_ip(spec["accessIPv4"])
    if "accessIPv6" in spec:
        values["access_ip_v6"] = server_schemas.access_ip(spec["accessIPv6"])
    if "user_data" in spec and mv >= (2, 57):
        values["user_data"] = spec["user_data"]
    if "hostname" in spec and mv >= (2, 90):
        values["hostname"] = spec["hostname"]
    if spec.get("trusted_image_certificates") and mv >= (2, 63):
        ctx.authorize(SERVERS % "rebuild:trusted_certs", {"project_id": ctx.project_id})

    async def prepare(conn, row):
        if mv >= (2, 54) and "key_name" in spec:
            name = spec["key_name"]
            if name is None:
                values.update(key_name=None, key_data=None)
            else:
                key = await server_create.key_of(conn, ctx.user_id, name)
                if key is None:
                    raise ApiError(400, "Invalid key_name provided.")
                values.update(key_name=name, key_data=key.public_key)
        rspec = instance_store.spec_of(row)
        rspec["image"] = await boot_images.for_boot(conn, request, image_ref,
                                                    json.loads(row.flavor))
        if "OS-DCF:diskConfig" in spec:
            rspec["disk_config"] = spec["OS-DCF:diskConfig"]
        if mv >= (2, 63) and "trusted_image_certificates" in spec:
            rspec["trusted_certs"] = spec["trusted_image_certificates"]
        values["request_spec"] = json.dumps(rspec)
        if "metadata" in spec:
            await server_create.check_metadata_quota(conn, cloud.config, row.project_id,
                                                     spec["metadata"])
            md = t.instance_metadata
            await conn.execute(md.delete().where(md.c.instance_uuid == uuid))
            for k, v in spec["metadata"].items():
                await conn.execute(md.insert().values(instance_uuid=uuid, meta_key=k,
                                                      meta_value=v))

    await run_guarded(request, uuid, guard, prepare)
    async with cloud.db.read() as conn:
        row = await instance_store.get(conn, uuid)
        server = await servers.render(request, conn, row, mode="rebuild")
    server["adminPass"] = password
    if mv >= (2, 57):
        server["user_data"] = row.user_data
    return web.json_response({"server": server}, status=202,
                             headers={"Location": server["links"][0]["href"]})


async def lock(request, uuid, body):
    ctx = common.context(request)
    mv = common.mv(request)
    validate(body, server_schemas.LOCK_V273 if mv >= (2, 73) else server_schemas.LOCK)
    reason = (body.get("lock") or {}).get("locked_reason") if mv >= (2, 73) else None
    async with common.cloud(request).db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize("os_compute_api:os-lock-server:lock", {"project_id": row.project_id,
                                                            "user_id": row.user_id})
        by = "owner" if row.project_id == ctx.project_id else "admin"
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
            locked=True, locked_by=by, locked_reason=reason, updated_at=tasks.utcnow()))
        await tasks.record_action(conn, instance_uuid=uuid, action="lock",
                                  request_id=ctx.request_id, project_id=ctx.project_id,
                                  user_id=ctx.user_id)
    return accepted()


async def unlock(request, uuid, body):
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        target = {"project_id": row.project_id, "user_id": row.user_id}
        ctx.authorize("os_compute_api:os-lock-server:unlock", target)
        expected = "owner" if row.project_id == ctx.project_id else "admin"
        if row.locked_by and row.locked_by != expected:
            ctx.authorize("os_compute_api:os-lock-server:unlock:unlock_override", target)
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
            locked=False, locked_by=None, locked_reason=None, updated_at=tasks.utcnow()))
        await tasks.record_action(conn, instance_uuid=uuid, action="unlock",
                                  request_id=ctx.request_id, project_id=ctx.project_id,
                                  user_id=ctx.user_id)
    return accepted()


_CONTROL = re.compile("[\x00-\x08\x0B-\x1F]")


async def console_output(request, uuid, body):
    ctx = common.context(request)
    validate(body, server_schemas.CONSOLE_OUTPUT)
    length = (body.get("os-getConsoleOutput") or {}).get("length")
    lines = None if length is None or int(length) == -1 else int(length)
    async with common.cloud(request).db.read() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
    ctx.authorize("os_compute_api:os-console-output", {"project_id": row.project_id})
    if not row.host:
        raise ApiError(409, f"Instance {uuid} is not ready")
    hub = common.compute(request).hub
    try:
        data = await hub.call(row.host, "console_output", {"uuid": uuid, "lines": lines},
                              timeout=30)
    except agent_hub.AgentUnavailable:
        raise ApiError(409, f"Instance {uuid} is not ready") from None
    except NotImplementedError:
        raise ApiError(501, "The requested functionality is not supported.") from None
    output = (data or {}).get("output") or ""
    return web.json_response({"output": _CONTROL.sub("", output)})


async def create_image(request, uuid, body):
    from cloudd.services.compute import server_snapshot
    return await server_snapshot.create_image(request, uuid, body)


async def create_backup(request, uuid, body):
    from cloudd.services.compute import server_snapshot
    return await server_snapshot.create_backup(request, uuid, body)


async def force_delete(request, uuid, body):
    await servers.start_delete(request, uuid, "os_compute_api:os-deferred-delete:force")
    return accepted()


async def restore(request, uuid, body):
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
    ctx.authorize("os_compute_api:os-deferred-delete:restore", {"project_id": row.project_id})
    check(Guard("restore", "", (S.SOFT_DELETED,)), row, ctx.can("context_is_admin", {}))
    return accepted()


ACTIONS = {
    "reboot": reboot, "os-stop": stop, "os-start": start, "pause": pause,
    "unpause": unpause, "suspend": suspend, "resume": resume, "resize": resize,
    "confirmResize": confirm_resize, "revertResize": revert_resize, "rebuild": rebuild,
    "lock": lock, "unlock": unlock, "os-getConsoleOutput": console_output,
    "createImage": create_image, "createBackup": create_backup,
    "forceDelete": force_delete, "restore": restore,
}


async def action(request: web.Request) -> web.Response:
    uuid = request.match_info["server_id"]
    body = await read_json(request)
    if not body:
        raise ApiError(400, "Malformed request body")
    name = next(iter(body))
    handler = ACTIONS.get(name) or server_admin_actions.ACTIONS.get(name) \
        or remote_consoles.ACTIONS.get(name)
    if handler is None:
        raise ApiError(400, f"There is no such action: {name}")
    return await handler(request, uuid, body)


ROUTES = {"/servers/{server_id}/action": {"POST": (action, None)}}

POLICIES = {
    SERVERS % "reboot": MEMBER, SERVERS % "stop": MEMBER, SERVERS % "start": MEMBER,
    SERVERS % "resize": MEMBER, SERVERS % "confirm_resize": MEMBER,
    SERVERS % "revert_resize": MEMBER, SERVERS % "rebuild": MEMBER,
    SERVERS % "rebuild:trusted_certs": MEMBER, SERVERS % "create_image": MEMBER,
    SERVERS % "create_image:allow_volume_backed": MEMBER,
    "os_compute_api:os-create-backup": MEMBER,
    SERVERS % "trigger_crash_dump": MEMBER,
    "os_compute_api:os-pause-server:pause": MEMBER,
    "os_compute_api:os-pause-server:unpause": MEMBER,
    "os_compute_api:os-suspend-server:suspend": MEMBER,
    "os_compute_api:os-suspend-server:resume": MEMBER,
    "os_compute_api:os-lock-server:lock": MEMBER,
    "os_compute_api:os-lock-server:unlock": MEMBER,
    "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN,
    "os_compute_api:os-console-output": MEMBER,
    "os_compute_api:os-deferred-delete:force": MEMBER,
    "os_compute_api:os-deferred-delete:restore": MEMBER,
}
