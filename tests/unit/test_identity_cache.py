"""The identity cache behind token validation: what it matches, and that every
identity write drops it at once (revocations, grants, disabled users and
projects, renames), in process on SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select

from cloudd.config import load as load_config
from cloudd.db import migrate
from cloudd.db import tables as t
from cloudd.services.identity import bootstrap, catalog, store
from cloudd.services.identity.cache import (
    INVALID,
    IdentityCache,
    Principal,
    Revocations,
)
from cloudd.services.identity.service import IdentityService
from cloudd.services.identity.tokens import Scope, record_revocation
from cloudd.web.errors import ApiError

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# ---------------------------------------------------------------- Revocations


def test_revocation_by_audit_id_only_matches_tokens_issued_before():
    revs = Revocations([("a1", None, None, at(10))])
    assert revs.revoked("u", None, ["a1"], at(5))
    assert revs.revoked("u", None, ["a1"], at(10))        # issued_before is inclusive
    assert not revs.revoked("u", None, ["a1"], at(11))
    assert not revs.revoked("u", None, ["a2"], at(5))
    # Only the token's own audit id counts, not the one of the token it came from.
    assert not revs.revoked("u", None, ["a2", "a1"], at(5))


def test_revocation_by_user_with_and_without_project():
    revs = Revocations([(None, "u", None, at(10)), (None, "v", "p", at(10))])
    assert revs.revoked("u", None, ["x"], at(5))
    assert revs.revoked("u", "any", ["x"], at(5))
    assert not revs.revoked("w", None, ["x"], at(5))
    assert revs.revoked("v", "p", ["x"], at(5))
    assert not revs.revoked("v", "q", ["x"], at(5))
    assert not revs.revoked("v", None, ["x"], at(5))


def test_revocation_by_project_and_events_that_match_nothing():
    revs = Revocations([(None, None, "p", at(10)),
                        ("a1", "u", None, at(10)),      # audit and user: matches nothing
                        (None, None, None, at(10))])    # matches nothing
    assert revs.revoked("anyone", "p", ["x"], at(5))
    assert not revs.revoked("anyone", None, ["x"], at(5))
    assert not revs.revoked("u", None, ["a1"], at(5))


def test_the_latest_event_for_a_key_wins():
    revs = Revocations([("a1", None, None, at(10)), ("a1", None, None, at(20)),
                        ("a1", None, None, at(15))])
    assert revs.revoked("u", None, ["a1"], at(19))


# ---------------------------------------------------------------- IdentityCache

P = Principal(user_name="n", user_domain_id="d", user_domain_name="D", roles=[])


def test_a_load_that_straddles_a_clear_is_not_kept():
    cache = IdentityCache()
    gen = cache.generation
    cache.clear()                            # a write committed while we were loading
    cache.put_principal(("u", None, None, None), P, gen)
    cache.put_revocations(Revocations([]), gen)
    assert cache.principal(("u", None, None, None)) is None
    assert cache.revocations() is None
    cache.put_principal(("u", None, None, None), P, cache.generation)
    assert cache.principal(("u", None, None, None)) is P


def test_entries_expire_after_max_age_and_size_is_bounded():
    now = [100.0]
    cache = IdentityCache(max_age=60, max_entries=2, clock=lambda: now[0])
    cache.put_principal(("a", None, None, None), P, cache.generation)
    cache.put_principal(("b", None, None, None), INVALID, cache.generation)
    assert cache.principal(("b", None, None, None)) is INVALID
    cache.put_principal(("c", None, None, None), P, cache.generation)  # full: starts over
    assert cache.principal(("a", None, None, None)) is None
    assert cache.principal(("c", None, None, None)) is P
    now[0] += 61
    assert cache.principal(("c", None, None, None)) is None


def test_catalog_is_built_once_per_address():
    cfg = load_config(None, environ={}, overrides={"server": {"public_url": "http://a:1"}})
    assert catalog.token_catalog(cfg) is catalog.token_catalog(cfg)
    other = load_config(None, environ={}, overrides={"server": {"public_url": "http://b:2"}})
    urls = {e["url"] for s in catalog.token_catalog(other) for e in s["endpoints"]}
    assert all(u.startswith("http://b:2/") for u in urls)


# ---------------------------------------------------------------- in process


class Counter:
    """Counts the connections validation opens (each is a trip to the database)."""

    def __init__(self, db) -> None:
        self.db = db
        self.opened = 0

    def read(self):
        self.opened += 1
        return self.db.read()


@pytest_asyncio.fixture
async def svc(tmp_path):
    cfg = load_config(None, environ={}, overrides={
        "server": {"data_dir": str(tmp_path / "data")},
        "identity": {"password_hash_rounds": 4}})
    cfg.data_dir.mkdir(parents=True, mode=0o700)
    from cloudd.db import Database
    db = Database(cfg.database_url)
    await migrate.prepare(db)
    await bootstrap.bootstrap(cfg, db)
    service = IdentityService(cfg, db)
    service.setup_keys()
    yield service
    await db.close()


async def ids(svc) -> dict:
    async with svc.db.read() as conn:
        user = (await conn.execute(select(t.user))).first()
        project = (await conn.execute(select(t.project).where(
            t.project.c.name == "admin"))).first()
        roles = {r.name: r.id for r in (await conn.execute(select(t.role))).all()}
    return {"user": user.id, "project": project.id, "roles": roles}


def issue(svc, user_id: str, project_id: str, audit: str = "audit-1") -> str:
    token, _, _ = svc.tokens.encode(user_id, ["password"], Scope("project", project_id),
                                    [audit])
    return token


async def validate(svc, token: str, counter: Counter, use_cache: bool = False):
    return await svc.tokens.validate(counter.read, token, use_cache=use_cache)


@pytest.mark.asyncio
async def test_a_second_validation_runs_no_sql(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    first = await validate(svc, issue(svc, i["user"], i["project"], "a"), counter)
    assert counter.opened == 1
    second = await validate(svc, issue(svc, i["user"], i["project"], "b"), counter)
    assert counter.opened == 1
    assert second.role_names == first.role_names
    assert set(first.role_names) == {"admin", "manager", "member", "reader"}
    assert first.project["name"] == "admin"
    assert second.audit_ids == ["b"]


@pytest.mark.asyncio
async def test_revocation_takes_effect_at_once(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    token = issue(svc, i["user"], i["project"], "to-revoke")
    keep = issue(svc, i["user"], i["project"], "to-keep")
    await validate(svc, token, counter, use_cache=True)
    async with svc.write() as conn:
        await record_revocation(conn, audit_id="to-revoke")
    for use_cache in (True, False):
        with pytest.raises(ApiError) as err:
            await validate(svc, token, counter, use_cache=use_cache)
        assert err.value.status == 404
    assert (await validate(svc, keep, counter)).user_id == i["user"]


@pytest.mark.asyncio
async def test_disabled_user_and_project_and_removed_grant_take_effect_at_once(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    token = issue(svc, i["user"], i["project"])

    async def valid() -> bool:
        try:
            await validate(svc, token, counter, use_cache=True)
            return True
        except ApiError:
            return False

    assert await valid()
    async with svc.write() as conn:
        await conn.execute(t.user.update().values(enabled=False))
    assert not await valid()
    async with svc.write() as conn:
        await conn.execute(t.user.update().values(enabled=True))
    assert await valid()
    async with svc.write() as conn:
        await conn.execute(t.project.update().where(t.project.c.id == i["project"])
                           .values(enabled=False))
    assert not await valid()
    async with svc.write() as conn:
        await conn.execute(t.project.update().where(t.project.c.id == i["project"])
                           .values(enabled=True))
    assert await valid()
    async with svc.write() as conn:
        await conn.execute(delete(t.role_assignment).where(
            t.role_assignment.c.target_id == i["project"]))
    assert not await valid()
    # ...and a grant made afterwards is seen at once (no negative entry survives).
    async with svc.write() as conn:
        await conn.execute(t.role_assignment.insert().values(
            type="UserProject", actor_id=i["user"], target_id=i["project"],
            role_id=i["roles"]["reader"], inherited=False))
    tok = await validate(svc, token, counter)
    assert tok.role_names == ["reader"]


@pytest.mark.asyncio
async def test_renames_and_implied_roles_are_seen_at_once(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    token = issue(svc, i["user"], i["project"])
    assert (await validate(svc, token, counter, use_cache=True)).project["name"] == "admin"
    async with svc.write() as conn:
        await conn.execute(t.project.update().where(t.project.c.id == i["project"])
                           .values(name="renamed"))
        await conn.execute(delete(t.implied_role).where(
            t.implied_role.c.prior_role_id == i["roles"]["admin"]))
    tok = await validate(svc, token, counter, use_cache=True)
    assert tok.project["name"] == "renamed"
    assert tok.role_names == ["admin"]


@pytest.mark.asyncio
async def test_a_failed_write_still_drops_the_cache(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    await validate(svc, issue(svc, i["user"], i["project"]), counter)
    gen = svc.cache.generation
    with pytest.raises(RuntimeError):
        async with svc.write():
            raise RuntimeError("boom")
    assert svc.cache.generation > gen
    assert svc.cache.principal((i["user"], "project", i["project"], None)) is None


@pytest.mark.asyncio
async def test_expired_token_and_unknown_user_do_not_validate(svc):
    i = await ids(svc)
    counter = Counter(svc.db)
    old, _, _ = svc.tokens.encode(i["user"], ["password"], Scope("project", i["project"]),
                                  ["x"], expires_at=store.utcnow() - dt.timedelta(seconds=1))
    with pytest.raises(ApiError):
        await validate(svc, old, counter)
    ghost = issue(svc, "no-such-user", i["project"])
    for _ in range(2):              # the second answer comes from the negative entry
        with pytest.raises(ApiError):
            await validate(svc, ghost, counter)
    async with svc.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(t.user))).scalar() == 1
