"""The scheduler: candidates from placement, filters, weighers, a claim.

``await Scheduler.select(instance, flavor=None, spec=None, consumer=None)``
returns a ``Selection`` (host, node, compute_node_id, allocations,
alternates) after claiming the allocations in placement for ``consumer``
(default: the instance uuid), or raises ``NoValidHost`` with Nova's message.

``instance`` is an instance row or a dict with at least ``uuid``,
``project_id``, ``user_id``, ``flavor`` and ``request_spec`` (JSON text or
dict; see docs/compute-design.md). ``flavor`` overrides the instance's
(a resize schedules the new flavor); ``spec`` the request spec.

Request spec keys read here: ``availability_zone`` (a zone, or Nova's
"zone:host[:node]" forced form), ``requested_host`` /
``requested_hypervisor_hostname`` (2.74), ``scheduler_hints``
(``same_host``, ``different_host``, ``group``), ``group`` (a server group
uuid, or a dict with ``uuid``/``id``; the instance's membership row wins
over it; a spec without a group has no membership, as the servers API
writes both), ``tried_hosts`` (hosts a reschedule must avoid).

Filters (Nova's defaults plus the aggregate ones): placement candidates
(VCPU / MEMORY_MB / DISK_GB as Nova's resources_from_flavor, ``resources:*``
and ``trait:*`` extra specs), ComputeFilter (service enabled and up),
RetryFilter (tried hosts), AvailabilityZoneFilter, requested host,
ServerGroup(Anti)AffinityFilter, SameHost/DifferentHostFilter,
AggregateInstanceExtraSpecsFilter. Weighers: RAM, CPU, build failures,
soft (anti-)affinity, each normalised to 0..1 then multiplied, as Nova.

Decisions are serialised by one lock, and group members' hosts are read
(from instance rows and from placement allocations) at claim time under
that lock, so anti-affinity holds for racing builds; the placement claim
(generation compare-and-swap) is the final guard on capacity.

Builds queued on that lock are decided against one snapshot of placement's
answer (Nova's scheduler likewise answers a multi-instance request from one
candidates query): the candidates, the hosts' service rows and zones are
read once, each claim made is added to the snapshot's usage, and a host the
snapshot says is full is left out. The snapshot is dropped when no build is
waiting, when it is ``SNAPSHOT_SECONDS`` old, when another flavor asks, and
when a claim fails; a decision that finds no host on a snapshot is made
again on a fresh one, so "No valid host" always comes from a fresh answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from cloudd.db import tables as t
from cloudd.services.compute import aggregate_store, hosts, schedule_request
from cloudd.services.compute.tasks import utcnow
from cloudd.services.placement import allocation_store
from cloudd.services.placement.consumers import ConcurrentUpdate
from cloudd.web.errors import ApiError

log = logging.getLogger("cloudd.compute.scheduler")

NOT_ENOUGH_HOSTS = "There are not enough hosts available."
SNAPSHOT_SECONDS = 2.0
BATCH = 50                            # requests decided and claimed together


class NoValidHost(Exception):
    """Nova's NoValidHost: "No valid host was found. %(reason)s" (code 500)."""

    code = 500

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        self.message = f"No valid host was found. {reason}"
        super().__init__(self.message)


@dataclass
class Selection:
    host: str
    node: str
    compute_node_id: str
    allocations: dict[str, dict[str, int]]
    alternates: list[tuple[str, str]] = field(default_factory=list)
    zone: str | None = None         # the availability zone of ``host``


@dataclass
class _Host:
    host: str
    node: str
    node_id: str
    service: Any
    allocations: dict[str, dict[str, int]]
    free_ram: float = 0.0
    free_vcpu: float = 0.0
    weight: float = 0.0
    # {provider: {resource class: free amount}} for the requested classes
    free: dict[str, dict[str, float]] = field(default_factory=dict)

    def fits(self) -> bool:
        return all(self.free.get(rp, {}).get(rc, 0.0) >= n
                   for rp, res in self.allocations.items() for rc, n in res.items())

    def consume(self) -> None:
        for rp, res in self.allocations.items():
            for rc, n in res.items():
                if rc in self.free.get(rp, {}):
                    self.free[rp][rc] -= n
        node = self.free.get(self.node_id, {})
        if "MEMORY_MB" in node:
            self.free_ram = node["MEMORY_MB"]
        if "VCPU" in node:
            self.free_vcpu = node["VCPU"]


@dataclass
class _Snapshot:
    key: str
    taken: float
    hosts: list[_Host]
    zone_map: dict[str, str]


def _json(value, default):
    if value is None or value == "":
        return default
    return json.loads(value) if isinstance(value, str) else value


def _as_dict(row) -> dict:
    return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)


def _normalise(values: list[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if lo == hi:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


class Scheduler:
    def __init__(self, compute) -> None:
        self.compute = compute
        self._lock = asyncio.Lock()
        self._queued = 0                # selects waiting (on the lock or in the batch)
        self._snapshot: _Snapshot | None = None
        self._batch: list = []          # (inst, flavor, spec, consumer, future)
        self._drainer: asyncio.Task | None = None
        self.failed_builds: dict[str, int] = {}

    # -- build failure tracking (BuildFailureWeigher) ---------------------------
    def note_build_failure(self, host: str) -> None:
        self.failed_builds[host] = self.failed_builds.get(host, 0) + 1

    def note_build_success(self, host: str) -> None:
        self.failed_builds.pop(host, None)

    # -- selection -----------------------------------------------------------------
    async def select(self, instance, *, flavor: dict | None = None, spec: dict | None = None,
                     consumer: str | None = None) -> Selection:
        inst = _as_dict(instance)
        flavor = flavor if flavor is not None else _json(inst.get("flavor"), {})
        spec = spec if spec is not None else _json(inst.get("request_spec"), {})
        consumer = consumer or inst["uuid"]
        if not schedule_request.needs_db(flavor, spec):
            # Decided with the others waiting, claimed in one placement write.
            fut: asyncio.Future = asyncio.get_running_loop().create_future()
            self._batch.append((inst, flavor, spec, consumer, fut))
            self._queued += 1
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.create_task(self._drain(), name="scheduler-batch")
            return await fut
        self._queued += 1
        queued = True
        try:
            async with self._lock:
                self._queued -= 1
                queued = False
                try:
                    return await self._select(inst, flavor, spec, consumer)
                finally:
                    self._idle_check()
        finally:
            if queued:
                self._queued -= 1

    def _idle_check(self) -> None:
        if self._queued == 0:
            self._snapshot = None       # nobody waiting: the next one asks anew

    async def _drain(self) -> None:
        while self._batch:
            async with self._lock:
                batch = self._batch[:BATCH]
                del self._batch[:BATCH]
                self._queued -= len(batch)
                try:
                    await self._select_batch(batch)
                except BaseException as exc:
                    for *_, fut in batch:
                        if not fut.done():
                            if isinstance(exc, Exception):
                                fut.set_exception(exc)
                            else:
                                fut.cancel()
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    self._idle_check()

    async def _select_batch(self, batch: list) -> None:
        """Decide each request on the snapshot (each choice taken from its
        free capacity), then claim them all in one placement transaction. A
        request the snapshot cannot place, and every request of a write that
        placement refuses, goes the one-at-a-time way (a fresh answer, its
        own claim)."""
        cfg = self.compute.config
        chosen: list[tuple[Any, Selection]] = []
        rest: list = []
        for item in batch:
            inst, flavor, spec, consumer, fut = item
            if rest or fut.done():
                rest.append(item)
                continue
            query = schedule_request.placement_query(flavor)
            key = json.dumps(query, sort_keys=True)
            snap = self._snapshot
            if snap is None or snap.key != key or \
                    time.monotonic() - snap.taken > SNAPSHOT_SECONDS:
                if chosen:                  # the snapshot holds their choices: go on alone
                    rest.append(item)
                    continue
                self._snapshot = None
                try:
                    snap = self._snapshot = await self._take_snapshot(inst, query, key)
                except NoValidHost as exc:
                    fut.set_exception(exc)
                    continue
            try:
                passed = await self._passing(cfg, snap, inst, flavor, spec, None)
            except NoValidHost:
                rest.append(item)           # maybe full on the snapshot only: ask anew
                continue
            host = passed[0]
            host.consume()
            chosen.append((item, self._selection(cfg, snap, passed, 0, spec)))
        if chosen:
            log.debug("claiming %d decisions in one placement write", len(chosen))
            try:
                await self._claim_all([(item[0], item[3], sel) for item, sel in chosen])
            except (allocation_store.AllocationFailure, ConcurrentUpdate, ApiError,
                    DBAPIError) as exc:
                log.info("a batch of %d claims was refused (%s); claiming one at a time",
                         len(chosen), exc)
                self._snapshot = None
                rest = [item for item, _ in chosen] + rest
            else:
                for (*_, fut), sel in chosen:
                    if not fut.done():
                        fut.set_result(sel)
        for inst, flavor, spec, consumer, fut in rest:
            if fut.done():
                continue
            try:
                fut.set_result(await self._select(inst, flavor, spec, consumer))
            except Exception as exc:    # noqa: BLE001 - it is the caller's to handle
                fut.set_exception(exc)

    async def _claim_all(self, claims: list[tuple[dict, str, Selection]]) -> None:
        """Every claim in one placement transaction (all or none), as
        ``PlacementService.claim`` writes each: a new INSTANCE consumer."""
        writes = [allocation_store.ConsumerAllocations(
            consumer, {rp: dict(r) for rp, r in sel.allocations.items()},
            project_id=inst["project_id"], user_id=inst["user_id"], generation=None,
            check_generation=True, consumer_type="INSTANCE")
            for inst, consumer, sel in claims]
        await allocation_store.write(self.compute.db, writes)

    async def _select(self, inst: dict, flavor: dict, spec: dict, consumer: str) -> Selection:
        cfg = self.compute.config
        query = schedule_request.placement_query(flavor)
        key = json.dumps(query, sort_keys=True)
        snap = self._snapshot
        if snap is not None and (snap.key != key or
                                 time.monotonic() - snap.taken > SNAPSHOT_SECONDS):
            snap = self._snapshot = None
        if snap is not None:
            try:
                return await self._decide(cfg, snap, inst, flavor, spec, consumer)
            except NoValidHost:
                pass                    # decided on a snapshot: ask placement afresh
        self._snapshot = None
        snap = await self._take_snapshot(inst, query, key)
        self._snapshot = snap
        return await self._decide(cfg, snap, inst, flavor, spec, consumer)

    async def _take_snapshot(self, inst: dict, query: dict, key: str) -> _Snapshot:
        try:
            body = await self.compute.placement.candidates(query=query)
        except ApiError as exc:
            log.info("placement refused the candidate query for %s: %s", inst["uuid"], exc)
            raise NoValidHost("") from None
        if not body.get("allocation_requests"):
            log.info("got no allocation candidates from placement for %s", inst["uuid"])
            raise NoValidHost("")
        async with self.compute.db.read() as conn:
            candidates = await self._host_states(conn, body)
            zone_map = await aggregate_store.host_zone_map(conn)
        return _Snapshot(key, time.monotonic(), candidates, zone_map)

    async def _decide(self, cfg, snap: _Snapshot, inst: dict, flavor: dict, spec: dict,
                      consumer: str) -> Selection:
        if schedule_request.needs_db(flavor, spec):
            async with self.compute.db.read() as conn:
                passed = await self._passing(cfg, snap, inst, flavor, spec, conn)
        else:
            passed = await self._passing(cfg, snap, inst, flavor, spec, None)
        for index, chosen in enumerate(passed):
            ok = await self.compute.placement.claim(
                consumer, chosen.allocations, inst["project_id"], inst["user_id"])
            if ok:
                chosen.consume()
                return self._selection(cfg, snap, passed, index, spec)
            log.info("claim for %s on %s lost a race; trying the next host",
                     consumer, chosen.host)
            self._snapshot = None       # placement knows better than the snapshot
        raise NoValidHost(NOT_ENOUGH_HOSTS)

    async def _passing(self, cfg, snap: _Snapshot, inst: dict, flavor: dict, spec: dict,
                       conn) -> list[_Host]:
        """The snapshot's hosts that fit and pass the filters, best first."""
        candidates = [h for h in snap.hosts if h.fits()]
        if not candidates:
            raise NoValidHost("")
        group = await self._group(conn, inst, spec) if conn is not None else None
        passed = await self._filter(conn, cfg, inst, flavor, spec, candidates,
                                    snap.zone_map, group)
        if not passed:
            raise NoValidHost(NOT_ENOUGH_HOSTS)
        group_counts = (await self._soft_group_counts(conn, inst, group)
                        if conn is not None else None)
        self._weigh(cfg, passed, group_counts)
        return passed

    @staticmethod
    def _selection(cfg, snap: _Snapshot, passed: list[_Host], index: int,
                   spec: dict) -> Selection:
        chosen = passed[index]
        rest = passed[index + 1:]
        attempts = int(spec.get("max_attempts") or cfg.compute.max_attempts)
        return Selection(chosen.host, chosen.node, chosen.node_id, chosen.allocations,
                         [(h.host, h.node) for h in rest[:max(attempts - 1, 0)]],
                         snap.zone_map.get(chosen.host) or cfg.compute.default_availability_zone)

    async def _host_states(self, conn, body: dict) -> list[_Host]:
        summaries = body.get("provider_summaries") or {}
        rps: set[str] = set()
        for req in body["allocation_requests"]:
            for rp in req["allocations"]:
                rps.add(rp)
                root = (summaries.get(rp) or {}).get("root_provider_uuid")
                if root:
                    rps.add(root)
        cn, svc = t.compute_node, t.compute_service
        rows = (await conn.execute(
            select(cn, svc.c.id.label("svc_id"), svc.c.disabled, svc.c.forced_down,
                   svc.c.last_seen_at, svc.c.updated_at.label("svc_updated_at"),
                   svc.c.created_at.label("svc_created_at"))
            .join(svc, svc.c.id == cn.c.service_id).where(cn.c.id.in_(rps)))).all()
        nodes = {r.id: r for r in rows}
        out: list[_Host] = []
        seen: set[str] = set()
        for req in body["allocation_requests"]:
            allocs = {rp: dict(v["resources"]) for rp, v in req["allocations"].items()}
            node = None
            for rp in allocs:
                root = (summaries.get(rp) or {}).get("root_provider_uuid") or rp
                node = nodes.get(rp) or nodes.get(root)
                if node is not None:
                    break
            if node is None or node.id in seen:
                continue
            seen.add(node.id)
            res = (summaries.get(node.id) or {}).get("resources") or {}

            def free(rc: str, res=res) -> float:
                r = res.get(rc) or {}
                return float(r.get("capacity", 0)) - float(r.get("used", 0))
            left = {rp: {rc: _free(summaries, rp, rc) for rc in amounts}
                    for rp, amounts in allocs.items()}
            out.append(_Host(node.host, node.hypervisor_hostname, node.id,
                             _ServiceView(node), allocs, free("MEMORY_MB"), free("VCPU"),
                             free=left))
        return out

    async def _filter(self, conn, cfg, inst: dict, flavor: dict, spec: dict,
                      cands: list[_Host], zone_map: dict[str, str],
                      group: dict | None) -> list[_Host]:
        """``conn`` may be None when ``_needs_db`` said no query is needed."""
        now = utcnow()
        hints = spec.get("scheduler_hints") or {}
        steps: list[tuple[str, Any]] = []
        steps.append(("ComputeFilter", lambda h: not h.service.disabled and hosts.is_up(
            h.service, cfg.compute.service_down_time, now)))
        tried = set(spec.get("tried_hosts") or [])
        if tried:
            steps.append(("RetryFilter", lambda h: h.host not in tried))
        zone, forced_host, forced_node = schedule_request.requested_zone(spec)
        if zone:
            default = cfg.compute.default_availability_zone
            steps.append(("AvailabilityZoneFilter",
                          lambda h: zone in (zone_map.get(h.host) or default).split(",")))
        if forced_host:
            steps.append(("RequestedHost", lambda h: h.host == forced_host))
        if forced_node:
            steps.append(("RequestedNode", lambda h: h.node == forced_node))
        if group is not None and group["policy"] in ("affinity", "anti-affinity"):
            counts = await self._member_hosts(conn, group["members"], inst["uuid"])
            if group["policy"] == "affinity":
                if counts:
                    steps.append(("ServerGroupAffinityFilter", lambda h: h.host in counts))
            else:
                limit = int((group["rules"] or {}).get("max_server_per_host") or 1)
                steps.append(("ServerGroupAntiAffinityFilter",
                              lambda h: counts.get(h.host, 0) < limit))
        same = schedule_request.uuid_list(hints.get("same_host"))
        if same:
            same_hosts = await self._hosts_of(conn, same)
            steps.append(("SameHostFilter", lambda h: h.host in same_hosts))
        different = schedule_request.uuid_list(hints.get("different_host"))
        if different:
            diff_hosts = await self._hosts_of(conn, different)
            steps.append(("DifferentHostFilter", lambda h: h.host not in diff_hosts))
        wanted = {k[len(schedule_request.AGG_SCOPE) + 1:]: v
                  for k, v in (flavor.get("extra_specs") or {}).items()
                  if k.startswith(schedule_request.AGG_SCOPE + ":")}
        if wanted:
            meta = await schedule_request.aggregate_metadata(conn, {h.host for h in cands})
            steps.append(("AggregateInstanceExtraSpecsFilter",
                          lambda h: all(any(schedule_request.spec_matches(v, req)
                                            for v in meta.get(h.host, {}).get(key, ()))
                                        for key, req in wanted.items())))
        passed = cands
        for name, check in steps:
            passed = [h for h in passed if check(h)]
            if not passed:
                log.info("filter %s returned 0 hosts for instance %s", name, inst["uuid"])
                break
        return passed

    def _weigh(self, cfg, passed: list[_Host], group_counts: tuple[str, dict] | None) -> None:
        c = cfg.compute
        parts = [
            (c.ram_weight_multiplier, [h.free_ram for h in passed]),
            (c.cpu_weight_multiplier, [h.free_vcpu for h in passed]),
            (c.build_failure_weight_multiplier,
             [-float(self.failed_builds.get(h.host, 0)) for h in passed]),
        ]
        if group_counts is not None:
            policy, counts = group_counts
            sign = 1.0 if policy == "soft-affinity" else -1.0
            parts.append((1.0, [sign * counts.get(h.host, 0) for h in passed]))
        for h in passed:
            h.weight = 0.0
        for multiplier, values in parts:
            for h, v in zip(passed, _normalise(values), strict=True):
                h.weight += multiplier * v
        passed.sort(key=lambda h: -h.weight)

    # -- helpers -------------------------------------------------------------------
    async def _group(self, conn, inst: dict, spec: dict) -> dict | None:
        if not schedule_request.group_ref(spec):
            return None     # membership rows are written only with a group in the spec
        sg, member = t.server_group, t.server_group_member
        row = (await conn.execute(select(sg).join(member, member.c.group_id == sg.c.id)
                                  .where(member.c.instance_uuid == inst["uuid"]))).first()
        if row is None:
            ref = spec.get("group") or (spec.get("scheduler_hints") or {}).get("group")
            if isinstance(ref, dict):
                ref = ref.get("uuid") or ref.get("id")
            if isinstance(ref, list):
                ref = ref[0] if ref else None
            if not ref:
                return None
            row = (await conn.execute(select(sg).where(sg.c.id == ref))).first()
            if row is None:
                return None
        members = [r.instance_uuid for r in await conn.execute(
            select(member.c.instance_uuid).where(member.c.group_id == row.id))]
        return {"id": row.id, "policy": row.policy, "rules": _json(row.rules, {}),
                "members": members}

    async def _member_hosts(self, conn, members: list[str], me: str) -> dict[str, int]:
        """{host: number of other members there}: from instance rows and from
        placement allocations (a claim made but not yet written to the row)."""
        others = [m for m in members if m != me]
        if not others:
            return {}
        placed: dict[str, str] = {}
        inst = t.instance
        for r in await conn.execute(select(inst.c.uuid, inst.c.host).where(
                inst.c.uuid.in_(others), inst.c.deleted == False)):
            if r.host:
                placed[r.uuid] = r.host
        alive = {r.uuid for r in await conn.execute(select(inst.c.uuid).where(
            inst.c.uuid.in_(others), inst.c.deleted == False))}
        alloc, cn = t.allocation, t.compute_node
        for r in await conn.execute(
                select(alloc.c.consumer_uuid, cn.c.host).distinct()
                .join(cn, cn.c.id == alloc.c.resource_provider_uuid)
                .where(alloc.c.consumer_uuid.in_(others))):
            if r.consumer_uuid in alive:
                placed.setdefault(r.consumer_uuid, r.host)
        counts: dict[str, int] = {}
        for host in placed.values():
            counts[host] = counts.get(host, 0) + 1
        return counts

    async def _soft_group_counts(self, conn, inst: dict, group: dict | None):
        if group is None or group["policy"] not in ("soft-affinity", "soft-anti-affinity"):
            return None
        return group["policy"], await self._member_hosts(conn, group["members"], inst["uuid"])

    async def _hosts_of(self, conn, uuids: list[str]) -> set[str]:
        inst = t.instance
        return {r.host for r in await conn.execute(select(inst.c.host).where(
            inst.c.uuid.in_(uuids), inst.c.deleted == False)) if r.host}


def _free(summaries: dict, rp: str, rc: str) -> float:
    r = ((summaries.get(rp) or {}).get("resources") or {}).get(rc) or {}
    return float(r.get("capacity", 0)) - float(r.get("used", 0))


class _ServiceView:
    """The compute service columns hosts.is_up reads, from a joined row."""

    def __init__(self, row) -> None:
        self.id = row.svc_id
        self.disabled = row.disabled
        self.forced_down = row.forced_down
        self.last_seen_at = row.last_seen_at
        self.updated_at = row.svc_updated_at
        self.created_at = row.svc_created_at

