"""POST /servers: validation (reads, outside any write transaction), then
every row of the request in one write transaction (quota, group membership,
instances, metadata, tags, build tasks with their "create" actions), shared
with the creates arriving at the same time (``ComputeService.creates``, a
group commit); the conductor is woken after the commit."""

from __future__ import annotations

import json
import re
import secrets
import uuid as uuidlib

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import (
    boot_images,
    common,
    flavor_store,
    quota_store,
    server_schemas,
    states,
    tasks,
)
from cloudd.services.compute.server_schemas import access_ip, as_bool, validate
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

SERVERS = "os_compute_api:servers:%s"
_PASSWORD_SYMBOLS = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# The largest multiple of the alphabet's size a byte can reach: bytes from it
# up are dropped, so every symbol stays equally likely.
_PASSWORD_BYTE_LIMIT = 256 - 256 % len(_PASSWORD_SYMBOLS)


def generate_password(length: int = 12) -> str:
    """``length`` symbols, each equally likely, from one read of the OS's
    random source (rarely two), not one read per symbol."""
    out: list[str] = []
    while len(out) < length:
        out.extend(_PASSWORD_SYMBOLS[b % len(_PASSWORD_SYMBOLS)]
                   for b in secrets.token_bytes(2 * length) if b < _PASSWORD_BYTE_LIMIT)
    return "".join(out[:length])


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """Nova's utils.sanitize_hostname."""
    name = name.encode("latin-1", "ignore").decode("latin-1")[:63]
    name = re.sub(r"[ _\.]", "-", name)
    name = re.sub(r"[^\w.-]+", "", name)
    name = name.lower().strip(".-")
    if name == "" and default is not None:
        return default[:63]
    return name


def id_from_href(value) -> str:
    """Nova's get_id_from_href: the last path segment of an id or URL."""
    from urllib.parse import urlsplit
    return urlsplit(str(value)).path.split("/")[-1]


async def key_of(conn, user_id: str, name: str):
    """The caller's keypair row (keys belong to users), or None."""
    from cloudd.services.compute import keypairs
    return await keypairs.get_keypair(conn, user_id, name)


async def zones(conn, cfg) -> set[str]:
    """Zones a server may ask for: the default one and those aggregates name."""
    md = t.aggregate_metadata
    found = {r.meta_value for r in (await conn.execute(
        select(md.c.meta_value).where(md.c.meta_key == "availability_zone"))).all()}
    return found | {cfg.compute.default_availability_zone}


async def check_metadata_quota(conn, cfg, project_id: str, metadata: dict,
                               limits: dict[str, int] | None = None) -> None:
    if limits is None:
        limits = await quota_store.limits_for(conn, cfg, project_id)
    limit = limits["metadata_items"]
    if 0 <= limit < len(metadata):
        raise ApiError(403, f"Maximum number of metadata items exceeds {limit}")


def _bdms(server: dict, image_ref: str) -> list[dict]:
    legacy = server.get("block_device_mapping") or []
    v2 = server.get("block_device_mapping_v2") or []
    if legacy and v2:
        raise ApiError(400, "Using different block_device_mapping syntaxes is not allowed "
                            "in the same request.")
    if legacy:
        raise ApiError(400, "Block Device Mapping is Invalid: volumes are not supported "
                            "by this cloud yet.")
    out = []
    boot_seen = False
    for bdm in v2:
        source = bdm.get("source_type")
        dest = bdm.get("destination_type") or ("volume" if source in ("volume", "snapshot")
                                               else "local")
        if source is None and dest != "local":
            raise ApiError(400, "Block Device Mapping is Invalid: Missing device UUID.")
        if dest == "volume" or source in ("volume", "snapshot"):
            raise ApiError(400, "Block Device Mapping is Invalid: volumes are not supported "
                                "by this cloud yet.")
        boot_index = bdm.get("boot_index")
        boot_index = int(boot_index) if boot_index not in (None, "") else None
        if source == "image":
            image_id = bdm.get("uuid") or bdm.get("image_id")
            if not image_id or not server_schemas.is_uuid_like(image_id):
                raise ApiError(400, "Block Device Mapping is Invalid: Missing device UUID.")
            if boot_index != 0:
                raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the "
                                    "instance and image/block device mapping combination is "
                                    "not valid.")
            boot_seen = True
        elif boot_index == 0:
            raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the "
                                "instance and image/block device mapping combination is not "
                                "valid.")
        out.append({**bdm, "source_type": source or "blank", "destination_type": dest,
                    "boot_index": boot_index})
    if not image_ref and not boot_seen:
        raise ApiError(400, "Missing imageRef attribute")
    return out


def _networks(value):
    if value is None or isinstance(value, str):
        return value
    seen_ports = []
    out = []
    for net in value:
        port = net.get("port")
        if port:
            if port in seen_ports:
                raise ApiError(400, f"Port ID '{port}' was specified twice: you cannot "
                                    "attach a port multiple times.")
            if net.get("fixed_ip") is not None:
                raise ApiError(400, f"Specified Fixed IP '{net['fixed_ip']}' cannot be used "
                                    f"with port '{port}': the two cannot be specified "
                                    "together.")
            seen_ports.append(port)
        else:
            if "uuid" not in net:
                raise ApiError(400, "Bad network format: missing 'uuid'")
            if not server_schemas.is_uuid_like(net["uuid"]):
                raise ApiError(400, "Bad networks format: network uuid is not in proper "
                                    f"format ({net['uuid']})")
        out.append(dict(net))
    return out


def _check_multiple(networks: list[dict]) -> None:
    """Nova's compute API checks for max_count > 1 with explicit requests."""
    if any(n.get("port") for n in networks):
        raise ApiError(400, "Failed to launch instances: Unable to launch multiple "
                            "instances with a single configured port ID. Please launch "
                            "your instance one by one with different ports.")
    if any(n.get("uuid") and n.get("fixed_ip") for n in networks):
        raise ApiError(400, "Failed to launch instances: max_count cannot be greater "
                            "than 1 if an fixed_ip is specified.")


async def _validate_networks(cloud, conn, project_id: str, networks,
                             security_groups: list[str]) -> None:
    """The network service's checks of the request (Nova's validate_networks,
    with its 400/404/409 messages); omitted networks are "auto" (Nova's
    default before 2.37). Nothing to check in a cloud without networking."""
    network = getattr(cloud, "network", None)
    if network is None:
        return
    requested = "auto" if networks is None else networks
    await network.validate_requested(conn, project_id, requested)
    check_groups = getattr(network, "validate_security_groups", None)
    if check_groups is not None and requested != "none":
        await check_groups(conn, project_id, security_groups)


async def _group_for(conn, ctx, is_admin: bool, hints: dict):
    group = hints.get("group")
    if isinstance(group, list):
        if len(group) > 1:
            raise ApiError(400, "Invalid input for field/attribute group. Value: "
                                f"{group}. {group} is too long")
        group = group[0] if group else None
    if not group:
        return None
    sg = t.server_group
    query = select(sg).where(sg.c.id == group)
    if not is_admin:
        query = query.where(sg.c.project_id == ctx.project_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise ApiError(400, f"Instance group {group} could not be found.")
    return row


async def _quota_count(conn, cfg, ctx, flavor: dict, lo: int, hi: int,
                       limits: dict[str, int]) -> int:
    """The most instances in [lo, hi] the quota allows (Nova builds fewer than
    max_count when min_count fits); 403 with Nova's text when even lo does not."""
    def deltas(n):
        return {"instances": n, "cores": n * int(flavor["vcpus"]),
                "ram": n * int(flavor["memory_mb"])}

    async def enforce(n):
        await quota_store.enforce(conn, cfg, ctx.project_id, ctx.user_id, deltas(n),
                                  limits=limits)
    try:
        await enforce(hi)
        return hi
    except ApiError as e:
        if e.status != 403 or lo == hi:
            raise
    await enforce(lo)
    good, bad = lo, hi
    while bad - good > 1:
        mid = (good + bad) // 2
        try:
            await enforce(mid)
            good = mid
        except ApiError:
            bad = mid
    return good


def _limited(limits: dict[str, int], flavor: dict, count: int) -> bool:
    """Whether booting ``count`` of ``flavor`` meets a limit (not -1), so the
    write must lock the project's quota and count."""
    deltas = {"instances": count, "cores": count * int(flavor["vcpus"]),
              "ram": count * int(flavor["memory_mb"])}
    return any(delta > 0 and limits.get(r, -1) >= 0 for r, delta in deltas.items())


async def _flavor(compute, conn, flavor_id: str, project_id: str, is_admin: bool):
    """The flavor snapshot (``instance.flavor``) if the caller may boot it, else
    None; read through the compute service's flavor cache. A fresh dict."""
    async def load(c):
        frow = await flavor_store.get_visible(c, flavor_id, project_id, is_admin)
        if frow is None or frow.disabled:
            return None
        return {"id": frow.id, "name": frow.name, "vcpus": frow.vcpus,
                "memory_mb": frow.memory_mb, "root_gb": frow.root_gb,
                "ephemeral_gb": frow.ephemeral_gb, "swap": frow.swap,
                "rxtx_factor": frow.rxtx_factor, "is_public": bool(frow.is_public),
                "description": frow.description,
                "extra_specs": await flavor_store.extra_specs(c, flavor_id)}
    cache = getattr(compute, "flavor_cache", None)
    key = (flavor_id, None if is_admin else project_id)
    found = await (cache.get(conn, key, load) if cache is not None else load(conn))
    if found is None:
        return None
    return {**found, "extra_specs": dict(found["extra_specs"])}


async def _limits(compute, conn, cfg, project_id: str) -> dict[str, int]:
    """quota_store.limits_for, read through the compute service's quota cache."""
    async def load(c):
        return await quota_store.limits_for(c, cfg, project_id)
    cache = getattr(compute, "quota_cache", None)
    if cache is None:
        return await load(conn)
    return dict(await cache.get(conn, project_id, load))


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    cfg = cloud.config
    mv = common.mv(request)
    body = await read_json(request)
    validate(body, server_schemas.create_schema(mv))
    server = body["server"]
    name = server["name"].strip()
    description = server.get("description") if mv >= (2, 19) else name
    hostname = server.get("hostname") if mv >= (2, 90) else None
    password = server.get("adminPass") or generate_password()
    zone = server.get("availability_zone")
    target = {"project_id": ctx.project_id, "user_id": ctx.user_id,
              "availability_zone": zone}
    ctx.authorize(SERVERS % "create", target)
    is_admin = ctx.can("context_is_admin", {})

    min_count = int(server.get("min_count", 1))
    max_count = int(server.get("max_count", min_count))
    if min_count > max_count:
        raise ApiError(400, "min_count must be <= max_count")
    if hostname and max_count > 1:
        raise ApiError(400, "Unable to specify a hostname when booting multiple "
                            "instances (hostname would be ambiguous).")

    force_host = force_node = None
    if zone and ":" in zone:
        zone, _, rest = zone.partition(":")
        force_host, _, force_node = rest.partition(":")
        force_host, force_node = force_host or None, force_node or None
        zone = zone or None
        if force_host or force_node:
            ctx.authorize(SERVERS % "create:forced_host", target)
    requested_host = server.get("host") if mv >= (2, 74) else None
    requested_node = server.get("hypervisor_hostname") if mv >= (2, 74) else None
    if requested_host or requested_node:
        ctx.authorize(SERVERS % "create:requested_destination", target)
        if force_host or force_node:
            raise ApiError(400, "One mechanism with host and/or hypervisor_hostname and "
                                "another mechanism with zone:host:node are mutually "
                                "exclusive.")

    image_ref = server.get("imageRef") or ""
    bdms = _bdms(server, image_ref)
    if bdms:
        ctx.authorize(SERVERS % "create:attach_volume", target)
    if not image_ref:
        image_ref = next(b.get("uuid") or b.get("image_id") for b in bdms
                         if b["source_type"] == "image")
    networks = _networks(server.get("networks"))
    if networks and networks != "none":
        ctx.authorize(SERVERS % "create:attach_network", target)
    trusted = server.get("trusted_image_certificates")
    if trusted:
        ctx.authorize(SERVERS % "create:trusted_certs", target)
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    metadata = server.get("metadata") or {}
    tags = list(dict.fromkeys(server.get("tags") or [])) if mv >= (2, 52) else []
    sec_groups = sorted({g["name"] for g in server.get("security_groups") or []
                         if g.get("name")}) or ["default"]
    config_drive = "True" if as_bool(server.get("config_drive", False)) or \
        cfg.compute.force_config_drive else ""
    if networks and not isinstance(networks, str) and max_count > 1:
        _check_multiple(networks)
    flavor_id = id_from_href(server["flavorRef"])

    reservation_id = "r-" + secrets.token_hex(4)
    compute = common.compute(request)
    # The checks read (mostly through the service's caches) outside any write
    # transaction, as Nova's do; what must be exact against racing creates
    # (the quota counts) runs in the write itself.
    async with cloud.db.lazy_read() as conn:
        flavor = await _flavor(compute, conn, flavor_id, ctx.project_id, is_admin)
        if flavor is None:
            raise ApiError(400, f"Flavor {flavor_id} could not be found.")
        if int(flavor["root_gb"]) == 0 and not bdms and \
                not ctx.can(SERVERS % "create:zero_disk_flavor", target):
            raise ApiError(403, "Only volume-backed servers are allowed for flavors with "
                                "zero disk.")
        if zone and zone not in await zones(conn, cfg):
            raise ApiError(400, "The requested availability zone is not available")
        key_data = None
        key_name = server.get("key_name")
        if key_name is not None:
            key = await key_of(conn, ctx.user_id, key_name)
            if key is None:
                raise ApiError(400, "Invalid key_name provided.")
            key_data = key.public_key
        image = await boot_images.for_boot(conn, request, image_ref, flavor)
        limits = await _limits(compute, conn, cfg, ctx.project_id)
        await check_metadata_quota(conn, cfg, ctx.project_id, metadata, limits)
        group = await _group_for(conn, ctx, is_admin, hints)
        await _validate_networks(cloud, conn, ctx.project_id, networks, sec_groups)
    spec = {
        "availability_zone": zone, "scheduler_hints": hints,
        "group": None if group is None else {
            "id": group.id, "policy": group.policy,
            "rules": json.loads(group.rules or "{}")},
        "image": image, "networks": networks,
        "block_device_mapping": bdms, "max_attempts": cfg.compute.max_attempts,
        "tried_hosts": [], "security_groups": sec_groups,
        "disk_config": server.get("OS-DCF:diskConfig") or "MANUAL",
        "force_host": force_host or requested_host,
        "force_node": force_node or requested_node,
        "trusted_certs": trusted or None,
    }
    flavor_json = json.dumps(flavor)
    quota_bound = _limited(limits, flavor, max_count) or group is not None

    async def write(batch) -> list[tuple[str, str]]:
        """Inside the shared write transaction (cloudd/db/group_commit.py):
        the quota checks, then every row of the request. May run twice (alone
        the second time), so it starts from nothing each time."""
        count = max_count
        if quota_bound:
            conn = await batch.flushed()
            count = await _quota_count(conn, cfg, ctx, flavor, min_count, max_count, limits)
            if group is not None:
                await quota_store.enforce_group_members(conn, cfg, ctx.project_id,
                                                        group.id, count)
        spec_json = json.dumps({**spec, "num_instances": count})
        now = tasks.utcnow()
        created = []
        for index in range(count):
            uuid = str(uuidlib.uuid4())
            display = name if count == 1 else f"{name}-{index + 1}"
            host_name = hostname or sanitize_hostname(display, f"Server-{uuid}")
            batch.insert(t.instance, {
                "uuid": uuid, "display_name": display, "hostname": host_name,
                "description": description if count == 1 or mv >= (2, 19) else display,
                "project_id": ctx.project_id, "user_id": ctx.user_id, "host": None,
                "node": None, "availability_zone": zone, "flavor": flavor_json,
                "image_ref": image_ref, "vm_state": states.BUILDING,
                "task_state": states.SCHEDULING, "power_state": 0, "key_name": key_name,
                "key_data": key_data, "user_data": server.get("user_data"),
                "config_drive": config_drive,
                "access_ip_v4": access_ip(server.get("accessIPv4")),
                "access_ip_v6": access_ip(server.get("accessIPv6")), "locked": False,
                "launch_index": index, "reservation_id": reservation_id, "progress": 0,
                "request_spec": spec_json, "created_at": now, "updated_at": now,
                "deleted": False})
            for k, v in metadata.items():
                batch.insert(t.instance_metadata,
                             {"instance_uuid": uuid, "meta_key": k, "meta_value": v})
            for tag in tags:
                batch.insert(t.instance_tag, {"instance_uuid": uuid, "tag": tag})
            if group is not None:
                batch.insert(t.server_group_member,
                             {"group_id": group.id, "instance_uuid": uuid})
            action = tasks.action_row(instance_uuid=uuid, action="create",
                                      request_id=ctx.request_id, project_id=ctx.project_id,
                                      user_id=ctx.user_id, when=now)
            task = tasks.task_row(instance_uuid=uuid, kind="build", payload=None,
                                  request_id=ctx.request_id, action_id=action["id"],
                                  when=now)
            batch.insert(t.instance_action, action)
            batch.insert(t.task, task)
            created.append((uuid, task["id"]))
        return created

    created = await compute.creates.run(write)
    for _, task_id in created:
        compute.wake(task_id)

    if as_bool(server.get("return_reservation_id", False)):
        return web.json_response({"reservation_id": reservation_id}, status=202)
    first = created[0][0]
    links = common.links(request, "servers", first)
    out = {"id": first, "links": links,
           "OS-DCF:diskConfig": spec["disk_config"],
           "security_groups": server.get("security_groups", [{"name": "default"}])}
    if getattr(cfg.compute, "enable_instance_password", True):
        out["adminPass"] = password
    return web.json_response({"server": out}, status=202,
                             headers={"Location": links[0]["href"]})
