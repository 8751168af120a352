"""Instance SQL: one instance for a caller, filtered/sorted/paged lists, and
the bulk loads the server views need (metadata, tags, faults, groups, host
states) — one query per kind for a whole page, never one per server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlalchemy import String, Text, and_, func, not_, or_, select

from cloudd.db import tables as t
from cloudd.services.compute import states
from cloudd.web.errors import ApiError

I = t.instance

# Nova's sort keys (schemas/servers.py VALID_SORT_KEYS) that we can order by;
# the rest of the valid keys are accepted and ignored.
SORT_COLUMNS = {
    "access_ip_v4": I.c.access_ip_v4, "access_ip_v6": I.c.access_ip_v6,
    "availability_zone": I.c.availability_zone, "config_drive": I.c.config_drive,
    "created_at": I.c.created_at, "display_description": I.c.description,
    "display_name": I.c.display_name, "host": I.c.host, "hostname": I.c.hostname,
    "image_ref": I.c.image_ref, "key_name": I.c.key_name,
    "launch_index": I.c.launch_index, "launched_at": I.c.launched_at,
    "locked_by": I.c.locked_by, "node": I.c.node, "power_state": I.c.power_state,
    "progress": I.c.progress, "project_id": I.c.project_id, "task_state": I.c.task_state,
    "terminated_at": I.c.terminated_at, "updated_at": I.c.updated_at,
    "user_id": I.c.user_id, "uuid": I.c.uuid, "vm_state": I.c.vm_state,
    "locked": I.c.locked,
}
IGNORED_SORT_KEYS = {
    "architecture", "cell_name", "cleaned", "default_ephemeral_device",
    "default_swap_device", "deleted", "deleted_at", "disable_terminate",
    "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
    "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
    "shutdown_terminate", "user_data", "vcpus", "vm_mode",
}
# Valid sort keys without a column here: accepted, not ordered by.
UNSORTABLE_KEYS = {"auto_disk_config", "instance_type_id", "kernel_id", "ramdisk_id",
                   "root_device_name"}


def instance_name(uuid: str) -> str:
    """The hypervisor-side name (Nova's instance_name_template, instance-%08x)."""
    return f"instance-{uuid[:8]}"


def not_found(uuid: str) -> ApiError:
    return ApiError(404, f"Instance {uuid} could not be found.")


async def get(conn, uuid: str, project_id: str | None = None, *,
              read_deleted: bool = False):
    """The instance row; 404 when missing, deleted, or (for ``project_id``,
    a non-admin caller's project) in another project, as Nova's
    project_only lookups answer."""
    query = select(I).where(I.c.uuid == uuid)
    if not read_deleted:
        query = query.where(I.c.deleted == False)
    if project_id is not None:
        query = query.where(I.c.project_id == project_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise not_found(uuid)
    return row


def flavor_of(row, which: str = "flavor") -> dict:
    raw = getattr(row, which)
    return json.loads(raw) if raw else {}


def spec_of(row) -> dict:
    return json.loads(row.request_spec or "{}")


# -- bulk loads -----------------------------------------------------------------

@dataclass
class Extras:
    """What the views show beside the instance rows, keyed by uuid."""
    metadata: dict[str, dict] = field(default_factory=dict)
    tags: dict[str, list] = field(default_factory=dict)
    faults: dict[str, object] = field(default_factory=dict)
    groups: dict[str, list] = field(default_factory=dict)
    host_status: dict[str, str] = field(default_factory=dict)
    vifs: dict[str, list] = field(default_factory=dict)     # the network service's


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def load_extras(conn, rows, *, faults: bool = True, tags: bool = True,
                      groups: bool = True, host_status: bool = False,
                      service_down_time: float = 60.0, network=None) -> Extras:
    out = Extras()
    uuids = [r.uuid for r in rows]
    for u in uuids:
        out.metadata[u] = {}
        out.tags[u] = []
        out.groups[u] = []
    for part in _chunks(uuids):
        for m in (await conn.execute(select(t.instance_metadata).where(
                t.instance_metadata.c.instance_uuid.in_(part)))).all():
            out.metadata[m.instance_uuid][m.meta_key] = m.meta_value
        if tags:
            for tg in (await conn.execute(select(t.instance_tag).where(
                    t.instance_tag.c.instance_uuid.in_(part))
                    .order_by(t.instance_tag.c.tag))).all():
                out.tags[tg.instance_uuid].append(tg.tag)
        if groups:
            for g in (await conn.execute(select(t.server_group_member).where(
                    t.server_group_member.c.instance_uuid.in_(part)))).all():
                out.groups[g.instance_uuid].append(g.group_id)
    if faults:
        wanted = [r.uuid for r in rows
                  if r.deleted or r.vm_state in (states.ERROR, states.DELETED)]
        f = t.instance_fault
        for part in _chunks(wanted):
            for row in (await conn.execute(select(f).where(f.c.instance_uuid.in_(part))
                                           .order_by(f.c.created_at, f.c.id))).all():
                out.faults[row.instance_uuid] = row        # the latest wins
    if host_status:
        out.host_status = await host_statuses(conn, rows, service_down_time)
    if network is not None:
        wanted = [r.uuid for r in rows if not r.deleted and r.vm_state != states.BUILDING]
        for part in _chunks(wanted):
            out.vifs.update(await network.vifs_for_instances(conn, part))
    return out


async def host_statuses(conn, rows, service_down_time: float) -> dict[str, str]:
    """Nova's host_status per instance: UP, DOWN, MAINTENANCE, UNKNOWN or ""."""
    from cloudd.services.compute import hosts
    from cloudd.services.compute.tasks import utcnow
    names = sorted({r.host for r in rows if r.host})
    services = {}
    if names:
        svc = t.compute_service
        for s in (await conn.execute(select(svc).where(
                svc.c.host.in_(names), svc.c.binary_name == hosts.COMPUTE_BINARY))).all():
            services[s.host] = s
    now = utcnow()
    out = {}
    for r in rows:
        if not r.host:
            out[r.uuid] = ""
            continue
        s = services.get(r.host)
        if s is None:
            out[r.uuid] = ""
        elif s.forced_down:
            out[r.uuid] = "DOWN"
        elif s.disabled:
            out[r.uuid] = "MAINTENANCE"
        else:
            out[r.uuid] = "UP" if hosts.is_up(s, service_down_time, now) else "UNKNOWN"
    return out


# -- lists ------------------------------------------------------------------------

@dataclass
class ListQuery:
    """The filters of one GET /servers, already checked by the API."""
    project_id: str | None = None            # None: every project (all_tenants)
    user_id: str | None = None
    deleted: bool | None = False             # None: deleted and not
    vm_states: list[str] | None = None
    task_states: list | None = None          # may hold None
    exact: dict = field(default_factory=dict)      # column -> value
    regex: dict = field(default_factory=dict)      # column -> pattern (Python side)
    image: str | None = None
    flavor: str | None = None
    changes_since: object = None
    changes_before: object = None
    tags: list[str] | None = None
    tags_any: list[str] | None = None
    not_tags: list[str] | None = None
    not_tags_any: list[str] | None = None
    locked: bool | None = None
    ip: str | None = None
    addresses: dict = field(default_factory=dict)   # uuid -> fixed IPs, for ``ip``
    sort_keys: list[str] = field(default_factory=lambda: ["created_at"])
    sort_dirs: list[str] = field(default_factory=lambda: ["desc"])
    limit: int = 1000
    marker: str | None = None


def _tag_filters(q: ListQuery) -> list:
    tag = t.instance_tag
    conds = []

    def has(name):
        return select(tag.c.instance_uuid).where(tag.c.tag == name)

    for name in q.tags or []:
        conds.append(I.c.uuid.in_(has(name)))
    if q.tags_any:
        conds.append(I.c.uuid.in_(select(tag.c.instance_uuid)
                                  .where(tag.c.tag.in_(q.tags_any))))
    if q.not_tags:
        # Not all of these tags.
        conds.append(not_(and_(*[I.c.uuid.in_(has(n)) for n in q.not_tags])))
    if q.not_tags_any:
        conds.append(I.c.uuid.not_in(select(tag.c.instance_uuid)
                                     .where(tag.c.tag.in_(q.not_tags_any))))
    return conds


def _where(q: ListQuery) -> list:
    conds = []
    if q.project_id is not None:
        conds.append(I.c.project_id == q.project_id)
    if q.user_id is not None:
        conds.append(I.c.user_id == q.user_id)
    if q.deleted is not None:
        conds.append(I.c.deleted == q.deleted)
    if q.vm_states is not None:
        conds.append(I.c.vm_state.in_(q.vm_states))
    if q.task_states is not None:
        named = [s for s in q.task_states if s is not None]
        parts = [I.c.task_state.in_(named)] if named else []
        if None in q.task_states:
            parts.append(I.c.task_state.is_(None))
        conds.append(or_(*parts) if parts else False)
    for col, value in q.exact.items():
        conds.append(I.c[col] == value)
    if q.image is not None:
        conds.append(I.c.image_ref == q.image)
    if q.changes_since is not None:
        conds.append(func.coalesce(I.c.updated_at, I.c.created_at) >= q.changes_since)
    if q.changes_before is not None:
        conds.append(func.coalesce(I.c.updated_at, I.c.created_at) <= q.changes_before)
    if q.locked is not None:
        conds.append(I.c.locked == q.locked)
    conds.extend(_tag_filters(q))
    return conds


def _python_match(q: ListQuery, row) -> bool:
    for col, pattern in q.regex.items():
        value = getattr(row, col)
        if value is None or not pattern.search(str(value)):
            return False
    if q.flavor is not None and flavor_of(row).get("id") != q.flavor:
        return False
    if q.ip is not None:
        # Nova's _ip_filter: the pattern matches the start of a fixed address.
        pattern = compile_regex(q.ip)
        return any(pattern.match(ip) for ip in q.addresses.get(row.uuid, ()))
    return True


def _sort_key(row, keys: list[str], dirs: list[str]):
    """A Python sort key matching the SQL ordering (NULLs first ascending)."""
    out = []
    for key, direction in zip(keys, dirs):
        value = getattr(row, SORT_COLUMNS[key].name)
        item = (value is not None, value if value is not None else 0)
        out.append(_Rev(item) if direction == "desc" else item)
    return out


def _sql_order(conn, keys: list[str], dirs: list[str]) -> list:
    pg = conn.dialect.name == "postgresql"
    out = []
    for key, direction in zip(keys, dirs):
        col = SORT_COLUMNS[key]
        if pg and isinstance(col.type, (String, Text)):
            col = col.collate("C")          # code point order, as SQLite and Python
        out.append(col.desc().nulls_last() if direction == "desc"
                   else col.asc().nulls_first())
    return out


class _Rev:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return other.v < self.v

    def __eq__(self, other):
        return self.v == other.v


async def list_instances(conn, q: ListQuery, *, network=None) -> list:
    """Rows matching ``q``, ordered, after ``q.marker``, at most ``q.limit``.

    Filters SQL cannot express portably (name regexes, the flavor in the
    instance's JSON, ``ip`` over the addresses ``network`` gives) run in
    Python over the SQL-filtered rows.
    """
    keys = list(q.sort_keys)
    dirs = list(q.sort_dirs) + [q.sort_dirs[-1] if q.sort_dirs else "desc"] * len(keys)
    dirs = dirs[:len(keys)]
    for tie in ("created_at", "uuid"):
        if tie not in keys:
            keys.append(tie)
            dirs.append(dirs[0] if dirs else "desc")
    query = select(I).where(*_where(q))
    if not q.regex and q.flavor is None and q.ip is None and q.marker is None:
        # Nothing to filter in Python: the database orders and limits (the same
        # order as _sort_key: NULLs first ascending, text by code point).
        query = query.order_by(*_sql_order(conn, keys, dirs)).limit(max(q.limit, 0))
        return (await conn.execute(query)).all()
    rows = (await conn.execute(query)).all()
    if q.ip is not None and network is not None:
        for part in _chunks([r.uuid for r in rows]):
            for uuid, vifs in (await network.vifs_for_instances(conn, part)).items():
                q.addresses[uuid] = [ip for vif in vifs for sub in vif.get("subnets") or []
                                     for ip in sub.get("ips") or []]
    rows = [r for r in rows if _python_match(q, r)]
    rows.sort(key=lambda r: _sort_key(r, keys, dirs))
    if q.marker is not None:
        for i, r in enumerate(rows):
            if r.uuid == q.marker:
                rows = rows[i + 1:]
                break
        else:
            # The marker may sit outside the filtered set (Nova looks it up
            # by uuid among every instance the caller may see).
            marker = (await conn.execute(select(I).where(I.c.uuid == q.marker))).first()
            if marker is None or (q.project_id is not None
                                  and marker.project_id != q.project_id):
                raise ApiError(400, f"marker [{q.marker}] not found")
            mk = _sort_key(marker, keys, dirs)
            rows = [r for r in rows if mk < _sort_key(r, keys, dirs)]
    return rows[:q.limit]


def compile_regex(value: str) -> re.Pattern:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(value), re.IGNORECASE)
