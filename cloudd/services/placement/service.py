"""PlacementService: Placement for in-process callers (the scheduler, conductor).

Every method goes through the same store code as the HTTP API
(allocation_store.write is what PUT and POST /allocations run), at the
newest microversion's rules: consumer generations are checked (1.28) and
consumers carry a type (1.38).

Errors: a claim that does not fit (capacity, min/max/step, no such
inventory) is ``False``, never an exception.  Anything else is Placement's
``ApiError`` with its HTTP status and ``code`` (for example 409
``placement.concurrent_update`` when a consumer generation does not match,
400 for an unknown provider or resource class).
"""

from __future__ import annotations

from typing import Any

from cloudd.services.placement import allocation_store as store
from cloudd.services.placement.consumers import ConcurrentUpdate
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.web.errors import ApiError

LATEST = (1, 39)
Allocations = dict[str, dict[str, int]]       # provider uuid -> {resource class: amount}


class PlacementService:
    def __init__(self, db) -> None:
        self.db = db

    # --- allocations -----------------------------------------------------------

    async def claim(self, consumer_uuid: str, allocations: Allocations, project_id: str,
                    user_id: str, consumer_generation: int | None = None,
                    consumer_type: str = "INSTANCE") -> bool:
        """Set the consumer's allocations to exactly ``allocations``.

        ``consumer_generation`` None means "a new consumer".  True when
        written; False when it does not fit (lost a capacity race).  A claim
        repeated after it succeeded (same allocations, project and user;
        at-least-once delivery) is True again without writing.
        """
        _validate(allocations, allow_empty=False)
        write = store.ConsumerAllocations(
            consumer_uuid, {rp: dict(r) for rp, r in allocations.items()},
            project_id=project_id, user_id=user_id, generation=consumer_generation,
            check_generation=True, consumer_type=consumer_type)
        try:
            await self._write([write])
        except store.InvalidInventory:
            return False
        except ApiError as exc:
            if exc.code == CONCURRENT_UPDATE and consumer_generation is None:
                current = await self.get_allocations(consumer_uuid)
                if _same_claim(current, allocations, project_id, user_id):
                    return True
            raise
        return True

    async def release(self, consumer_uuid: str) -> bool:
        """Remove all of a consumer's allocations; False if it had none (not an error)."""
        return await store.delete_all(self.db, consumer_uuid)

    async def move(self, source_consumer: str, target_consumer: str, *,
                   source_allocations: Allocations | None = None,
                   target_consumer_type: str = "MIGRATION", attempts: int = 3) -> bool:
        """Nova's move_allocations: the source's allocations go to the target.

        In one atomic write (POST /allocations): the target consumer takes
        over everything the source holds (replacing whatever it held), and
        the source is left with ``source_allocations`` (default: nothing, so
        it is deleted).  Resize/migration: move(instance, migration) frees the
        instance uuid to claim the destination; a revert is
        move(migration, instance, target_consumer_type="INSTANCE").

        Both consumers' generations are read and compare-and-swapped; a
        concurrent change to either is re-read and retried ``attempts``
        times before the 409 is raised.  False when the source holds nothing
        or ``source_allocations`` do not fit.
        """
        if source_allocations:
            _validate(source_allocations, allow_empty=False)
        for attempt in range(attempts):
            source = await self.get_allocations(source_consumer)
            if not source["allocations"]:
                return False
            target = await self.get_allocations(target_consumer)
            moved = {rp: dict(v["resources"]) for rp, v in source["allocations"].items()}
            writes = [
                store.ConsumerAllocations(
                    target_consumer, moved, project_id=source["project_id"],
                    user_id=source["user_id"],
                    generation=target.get("consumer_generation"), check_generation=True,
                    consumer_type=target_consumer_type),
                store.ConsumerAllocations(
                    source_consumer, {rp: dict(r) for rp, r in (source_allocations or {}).items()},
                    project_id=source["project_id"], user_id=source["user_id"],
                    generation=source["consumer_generation"], check_generation=True),
            ]
            try:
                await self._write(writes)
                return True
            except store.InvalidInventory:
                return False
            except ApiError as exc:
                if exc.code != CONCURRENT_UPDATE or attempt == attempts - 1:
                    raise
        return False

    async def get_allocations(self, consumer_uuid: str) -> dict[str, Any]:
        """GET /allocations/{consumer_uuid} at the newest microversion:
        {"allocations": {rp: {"generation", "resources"}}, "project_id",
        "user_id", "consumer_generation", "consumer_type"}, or just
        {"allocations": {}} for a consumer holding nothing."""
        async with self.db.read() as conn:
            rows = await store.for_consumer(conn, consumer_uuid)
        return store.consumer_body(rows, LATEST)

    async def _write(self, writes: list[store.ConsumerAllocations]) -> None:
        try:
            await store.write(self.db, writes)
        except store.ResourceClassNotFound as exc:
            raise error(400, f"Unable to allocate inventory {exc}") from None
        except ConcurrentUpdate as exc:
            raise error(409, "Inventory and/or allocations changed while attempting to "
                             f"allocate: {exc}", CONCURRENT_UPDATE) from None

    # --- allocation candidates ---------------------------------------------------
    # (candidates engineer's block: the same search GET /allocation_candidates
    # runs, see candidates.py / candidate_search.py.)

    async def candidates(self, groups: dict[str, Any] | None = None,
                         params: Any = None, *, query: Any = None,
                         version: tuple[int, int] = LATEST,
                         max_candidates: int | None = None) -> dict[str, Any]:
        """GET /allocation_candidates for the scheduler, in one read transaction.

        Either ``groups`` ({suffix: query.RequestGroup}, '' for the unsuffixed
        group) with optional ``params`` (query.RequestWideParams: limit,
        group_policy, root_required/root_forbidden, same_subtrees), taken as
        given; or ``query``, the API's query parameters ({"resources":
        "VCPU:1,MEMORY_MB:512", "resources_GPU": "VGPU:1", "group_policy":
        "none", "required": ["HW_CPU_X86_AVX", "in:A,B"], ...}, a list for a
        repeated key), checked exactly as the HTTP API checks them.

        Returns the response body at ``version`` (default 1.39):
        {"allocation_requests": [{"allocations": {rp: {"resources": {rc: n}}},
        "mappings": {suffix: [rp]}}], "provider_summaries": {rp: {"resources":
        {rc: {"capacity", "used"}}, "traits", "parent_provider_uuid",
        "root_provider_uuid"}}}; each "allocations" is ready for ``claim``.
        Bad input raises Placement's 400 ApiError.
        """
        from cloudd.services.placement import candidates as cands
        if query is not None:
            return await cands.candidates_for_query(
                self.db, query, version=version, max_candidates=max_candidates)
        return await cands.find_candidates(self.db, groups or {}, params, version=version,
                                           max_candidates=max_candidates)


    # --- providers and inventory (the agent hub's block) ----------------------------

    async def ensure_provider(self, uuid: str, name: str) -> int:
        """Make sure a root provider ``uuid`` named ``name`` exists; returns its generation.

        Creates it (generation 0) when missing, renames it when its name
        differs (bumping the generation, compare-and-swap).  Another provider
        already holding ``name`` is Placement's 409 ``placement.duplicate_name``.
        """
        from sqlalchemy import select, update
        from sqlalchemy.exc import IntegrityError

        from cloudd.db import tables as t
        from cloudd.services.placement import provider_store, util
        from cloudd.services.placement.errors import DUPLICATE_NAME
        rp = t.resource_provider
        for attempt in range(3):
            try:
                async with self.db.write() as conn:
                    row = await provider_store.find_provider(conn, uuid)
                    other = (await conn.execute(select(rp.c.uuid).where(
                        rp.c.name == name, rp.c.uuid != uuid))).first()
                    if other is not None:
                        raise error(409, f"Conflicting resource provider name: {name} "
                                         "already exists.", DUPLICATE_NAME)
                    if row is None:
                        await conn.execute(rp.insert().values(
                            uuid=uuid, name=name, generation=0, root_provider_uuid=uuid,
                            parent_provider_uuid=None, created_at=util.utcnow()))
                        return 0
                    if row.name == name:
                        return row.generation
                    await conn.execute(update(rp).where(rp.c.uuid == uuid)
                                       .values(name=name))
                    return await provider_store.bump_generation(conn, uuid, row.generation)
            except IntegrityError:
                if attempt == 2:
                    raise
            except ApiError as exc:
                if exc.code != CONCURRENT_UPDATE or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def set_inventory(self, uuid: str, inventories: dict[str, dict[str, Any]],
                            attempts: int = 3) -> int:
        """PUT /resource_providers/{uuid}/inventories for in-process callers.

        ``inventories`` is {resource class: {"total", "reserved", "min_unit",
        "max_unit", "step_size", "allocation_ratio"}} (missing fields take
        Placement's defaults) and becomes the provider's whole inventory.
        The generation is read and compare-and-swapped; a concurrent change
        is retried ``attempts`` times.  Classes dropped while allocated are
        409 ``placement.inventory.inuse``.  Returns the new generation.
        """
        from cloudd.services.placement import inventories as inv
        from cloudd.services.placement import provider_store
        from cloudd.services.placement.resource_classes import find as find_class
        records = {rc: inv._with_defaults(fields) for rc, fields in inventories.items()}
        for rc, record in records.items():
            if int((record["total"] - record["reserved"]) * record["allocation_ratio"]) < 0:
                raise error(400, f"Invalid inventory for '{rc}' on resource provider "
                                 f"'{uuid}'. The reserved value is greater than total.")
        for attempt in range(attempts):
            try:
                async with self.db.write() as conn:
                    rp = await provider_store.lock_provider(conn, uuid)
                    for rc in records:
                        if await find_class(conn, rc) is None:
                            raise error(400, f"No such resource class {rc}.")
                    return await inv.replace_inventories(conn, rp, records)
            except ApiError as exc:
                if exc.code != CONCURRENT_UPDATE or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


def _validate(allocations: Allocations, *, allow_empty: bool) -> None:
    if not allocations and not allow_empty:
        raise ValueError("allocations must name at least one resource provider")
    for rp, resources in allocations.items():
        if not resources:
            raise ValueError(f"no resources for provider {rp}")
        for rc, amount in resources.items():
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
                raise ValueError(f"amount of {rc} on {rp} must be a positive integer")


def _same_claim(current: dict, allocations: Allocations, project_id: str,
                user_id: str) -> bool:
    held = {rp: v["resources"] for rp, v in current["allocations"].items()}
    return (held == allocations and current.get("project_id") == project_id
            and current.get("user_id") == user_id)
