"""createImage and createBackup: a snapshot of a server's root disk as a new image.

As Nova's compute API snapshot: the image record is created at once
(queued, private to the server's project, ``image_type=snapshot``,
``instance_uuid``, ``base_image_ref`` and the boot image's inherited
properties such as kernel_id/ramdisk_id/os_type), the server moves to
task_state ``image_snapshot`` and a ``snapshot`` task asks the host's agent
to upload the disk. The response is 202 with the image's Location (before
2.45) or ``{"image_id"}`` (2.45 on). createBackup is the same with
``image_type=backup`` and ``backup_type``; once the backup is up, only the
newest ``rotation`` backups of that type are kept (snapshot_flow.py).
"""

from __future__ import annotations

import json
import uuid as uuidlib

from aiohttp import web

from cloudd.services.compute import common, states
from cloudd.services.compute.server_schemas import validate
from cloudd.services.image import image_store
from cloudd.web.errors import ApiError

# Boot-image properties a snapshot does not inherit (Nova's
# non_inheritable_image_properties plus Glance's own bookkeeping).
NOT_INHERITED = {"cache_in_nova", "bittorrent", "img_signature_hash_method",
                 "img_signature", "img_signature_key_type",
                 "img_signature_certificate_uuid", "image_type", "instance_uuid",
                 "base_image_ref", "image_location", "image_state", "owner_id",
                 "user_id", "os_glance_importing_to_stores",
                 "os_glance_failed_import", "os_glance_import_task"}
MAX_METADATA = 128


def _properties(row, metadata: dict) -> dict[str, str]:
    spec = json.loads(row.request_spec or "{}")
    boot = spec.get("image") if isinstance(spec.get("image"), dict) else {}
    props = {k: str(v) for k, v in (boot.get("properties") or {}).items()
             if k not in NOT_INHERITED}
    props.update({"image_type": "snapshot", "instance_uuid": row.uuid,
                  "base_image_ref": row.image_ref or "", "owner_id": row.project_id,
                  "user_id": row.user_id})
    props.update({str(k): str(v) for k, v in metadata.items()})
    return props


async def _snapshot(request: web.Request, uuid: str, *, name: str, metadata: dict,
                    action: str, task_state: str, payload: dict,
                    extra: dict[str, str]) -> str:
    from cloudd.services.compute import server_actions
    if len(metadata) > MAX_METADATA:
        raise ApiError(403, "Quota exceeded for metadata_items: Requested "
                            f"{len(metadata)}, but already used 0 of {MAX_METADATA} "
                            "metadata_items")
    image_id = str(uuidlib.uuid4())
    rule = server_actions.SERVERS % "create_image" if action == "createImage" \
        else "os_compute_api:os-create-backup"
    guard = server_actions.Guard(
        action, rule,
        (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED),
        new_task_state=task_state, kind="snapshot", instance_action=action,
        payload={"image_id": image_id, **payload})

    async def prepare(conn, row) -> None:
        flavor = json.loads(row.flavor)
        now = image_store.utcnow()
        props = _properties(row, metadata)
        props.update(extra)
        await image_store.insert(conn, {
            "id": image_id, "name": name, "status": "queued",
            "visibility": "private", "protected": False, "os_hidden": False,
            "owner": row.project_id, "disk_format": "qcow2", "container_format": "bare",
            "min_disk": int(flavor.get("root_gb") or 0),
            "min_ram": 0, "created_at": now, "updated_at": now}, props, [])

    await server_actions.run_guarded(request, uuid, guard, prepare)
    return image_id


async def create_image(request: web.Request, uuid: str, body: dict) -> web.Response:
    from cloudd.services.compute import server_schemas
    validate(body, server_schemas.CREATE_IMAGE)
    spec = body["createImage"]
    image_id = await _snapshot(request, uuid, name=spec["name"],
                               metadata=spec.get("metadata") or {}, action="createImage",
                               task_state=states.IMAGE_SNAPSHOT, payload={}, extra={})
    if common.at_least(request, 2, 45):
        return web.json_response({"image_id": image_id}, status=202)
    return web.Response(status=202, headers={"Location": _location(request, image_id)})


async def create_backup(request: web.Request, uuid: str, body: dict) -> web.Response:
    from cloudd.services.compute import server_schemas
    validate(body, server_schemas.CREATE_BACKUP)
    spec = body["createBackup"]
    rotation = int(spec["rotation"])
    image_id = await _snapshot(
        request, uuid, name=spec["name"], metadata=spec.get("metadata") or {},
        action="createBackup", task_state=states.IMAGE_BACKUP,
        payload={"rotation": rotation, "backup_type": spec["backup_type"]},
        extra={"image_type": "backup", "backup_type": spec["backup_type"]})
    if common.at_least(request, 2, 45):
        return web.json_response({"image_id": image_id}, status=202)
    headers = {"Location": _location(request, image_id)} if rotation > 0 else {}
    return web.Response(status=202, headers=headers)


def _location(request: web.Request, image_id: str) -> str:
    return f"{request.scheme}://{request.host}/image/v2/images/{image_id}"
