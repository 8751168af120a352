"""Storage: schema.sql vs cloudd/db/tables/, migrations, SQLite settings, the db CLI,
concurrent writers and foreign keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from cloudd.db import Database, migrate, tables
from cloudd.db.migrate import SchemaError

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "postgresql"]
NOW = datetime(2024, 1, 1, 12, 0, 0)



@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def url(backend, database_url, tmp_path):
    """A fresh, empty database (SQLite in a not-yet-existing data directory)."""
    return database_url(backend, tmp_path / "data")


@pytest_asyncio.fixture
async def db(url):
    database = Database(url)
    yield database
    await database.close()


@pytest_asyncio.fixture
async def ready(db):
    await migrate.init(db)
    return db


async def set_version(db: Database, version: int) -> None:
    async with db.write() as conn:
        await conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version})


# --- (a) schema.sql matches cloudd/db/tables/ --------------------------------------------

def _reflect(sync_conn) -> dict:
    insp = inspect(sync_conn)
    out = {}
    for name in insp.get_table_names():
        fks = {(tuple(fk["constrained_columns"]), fk["referred_table"],
                tuple(fk["referred_columns"])) for fk in insp.get_foreign_keys(name)}
        out[name] = {
            "columns": {c["name"]: c["nullable"] for c in insp.get_columns(name)},
            "pk": set(insp.get_pk_constraint(name)["constrained_columns"]),
            "fks": fks,
        }
    return out


def _declared() -> dict:
    out = {}
    for name, table in tables.metadata.tables.items():
        out[name] = {
            "columns": {c.name: c.nullable for c in table.columns},
            "pk": {c.name for c in table.primary_key.columns},
            "fks": {((fk.parent.name,), fk.column.table.name, (fk.column.name,))
                    for fk in table.foreign_keys},
        }
    return out


@pytest.mark.asyncio
async def test_schema_matches_tables(ready):
    async with ready.read() as conn:
        actual = await conn.run_sync(_reflect)
    declared = _declared()
    assert sorted(actual) == sorted(declared)
    wrong_nullability = []
    for name, want in declared.items():
        got = actual[name]
        assert list(got["columns"]) == list(want["columns"]), f"{name}: columns differ"
        assert got["pk"] == want["pk"], f"{name}: primary key differs"
        assert got["fks"] == want["fks"], f"{name}: foreign keys differ"
        wrong_nullability += [f"{name}.{col}" for col, nullable in want["columns"].items()
                              if got["columns"][col] != nullable]
    assert not wrong_nullability, (
        "nullable in the database but NOT NULL in cloudd/db/tables/ (or the reverse): "
        + ", ".join(wrong_nullability))

@pytest.mark.asyncio
async def test_primary_key_rejects_null(ready):
    with pytest.raises(IntegrityError):
        async with ready.write() as conn:
            await conn.execute(tables.domain.insert().values(
                id=None, name="nullid", created_at=NOW))


# --- (b) init, status, prepare, upgrade ------------------------------------------

@pytest.mark.asyncio
async def test_init_is_idempotent_and_status_reports_version(db):
    assert await migrate.status(db) == migrate.Status(None, migrate.latest_version())
    assert await migrate.init(db) is True
    assert await migrate.init(db) is False
    st = await migrate.status(db)
    assert st.current == migrate.latest_version() == st.latest
    assert st.pending == 0
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT version FROM schema_version"))).all()
    assert rows == [(st.current,)]
    assert await migrate.prepare(db) == st


@pytest.mark.asyncio
async def test_prepare_creates_an_empty_database(db):
    st = await migrate.prepare(db)
    assert st.current == migrate.latest_version()


@pytest.mark.asyncio
async def test_prepare_refuses_newer_database(ready):
    await set_version(ready, migrate.latest_version() + 1)
    with pytest.raises(SchemaError, match="newer"):
        await migrate.prepare(ready)
    with pytest.raises(SchemaError, match="newer"):
        await migrate.upgrade(ready)


@pytest.mark.asyncio
async def test_prepare_refuses_older_database(ready):
    await set_version(ready, migrate.latest_version() - 1)
    with pytest.raises(SchemaError, match="cloudd db upgrade"):
        await migrate.prepare(ready)


@pytest.mark.asyncio
async def test_upgrade_applies_pending_migrations(ready, tmp_path, monkeypatch):
    latest = migrate.latest_version()
    nxt = latest + 1
    mig = tmp_path / "migrations"
    mig.mkdir()
    for _, path in migrate.migrations():
        (mig / path.name).write_text(path.read_text())
    (mig / f"{nxt:03d}_add_note.sql").write_text(
        "-- a test migration\n"
        "CREATE TABLE note (id VARCHAR(64) NOT NULL PRIMARY KEY, body TEXT NOT NULL);\n"
        f"UPDATE schema_version SET version = {nxt};\n")
    (mig / "README.txt").write_text("not a migration")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", mig)
    assert migrate.latest_version() == nxt
    with pytest.raises(SchemaError, match="cloudd db upgrade"):
        await migrate.prepare(ready)
    assert await migrate.upgrade(ready) == [nxt]
    assert await migrate.upgrade(ready) == []
    assert (await migrate.prepare(ready)).current == nxt
    async with ready.read() as conn:
        assert await conn.run_sync(lambda c: inspect(c).has_table("note"))


async def _shape(db: Database) -> dict:
    def read(sync_conn):
        insp = inspect(sync_conn)
        return {name: ({c["name"]: (str(c["type"]), c["nullable"])
                        for c in insp.get_columns(name)},
                       sorted(insp.get_pk_constraint(name)["constrained_columns"]),
                       sorted(ix["name"] for ix in insp.get_indexes(name)))
                for name in insp.get_table_names()}
    async with db.read() as conn:
        return await conn.run_sync(read)


@pytest.mark.asyncio
async def test_baseline_plus_migrations_builds_schema_sql(backend, database_url, tmp_path):
    """A database from the first release, upgraded, is the one schema.sql makes."""
    fresh = Database(database_url(backend, tmp_path / "a"))
    (tmp_path / "b").mkdir()
    old = Database(database_url(backend, tmp_path / "b"))
    try:
        await migrate.init(fresh)
        await migrate._run_script(old, migrate.migrations()[0][1].read_text())
        assert (await migrate.status(old)).current == 1
        applied = await migrate.upgrade(old)
        assert applied == [n for n, _ in migrate.migrations()[1:]]
        assert await _shape(old) == await _shape(fresh)
    finally:
        await fresh.close()
        await old.close()


# --- (c) SQLite settings -----------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.asyncio
async def test_sqlite_pragmas_on_every_connection(ready):
    async def pragmas(mode):
        async with mode() as conn:
            jm = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fk = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            await asyncio.sleep(0.05)   # hold the connection so the pool opens others
            return jm, fk

    results = await asyncio.gather(*[pragmas(m) for m in [ready.read, ready.write] * 3])
    assert results == [("wal", 1)] * 6
    assert ready.engine.pool.checkedin() >= 3, "expected several pooled connections"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.asyncio
async def test_sqlite_files_are_private(ready, url):
    path = Path(make_url(url).database)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with ready.write() as conn:   # make sure the -wal and -shm files exist
        await conn.execute(text("UPDATE schema_version SET version = version"))
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    raw = sqlite3.connect(path)    # WAL is a property of the file itself
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


# --- (d) the `cloudd db` command ---------------------------------------------------

def cloudd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "cloudd", *args], capture_output=True,
                          text=True, env=full, timeout=60, cwd=ROOT)


def test_db_cli(backend, database_url, tmp_path):
    latest = migrate.latest_version()
    if backend == "sqlite":
        data = tmp_path / "data"
        pre, env = ["--data-dir", str(data)], {}
        url = f"sqlite+aiosqlite:///{data / 'cloudd.db'}"
    else:
        url = database_url(backend, tmp_path)
        pre, env = [], {"CLOUDD_DATABASE__URL": url}

    def run(action: str, code: int = 0) -> str:
        res = cloudd(*pre, "db", action, env=env)
        assert res.returncode == code, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        return res.stdout + res.stderr

    out = run("status")
    assert f"schema version: empty (this cloudd: {latest}); database: {backend}" in out
    out = run("init")
    assert "created the schema" in out
    assert f"schema version: {latest} (this cloudd: {latest})" in out
    assert "already there" in run("init")
    out = run("upgrade")
    assert "up to date" in out and f"schema version: {latest}" in out
    out = run("status")
    assert f"schema version: {latest} (this cloudd: {latest}); database: {backend}" in out
    if backend == "sqlite":
        assert stat.S_IMODE((data / "cloudd.db").stat().st_mode) == 0o600

    async def bump():
        database = Database(url)
        try:
            await set_version(database, latest + 1)
        finally:
            await database.close()
    asyncio.run(bump())
    out = run("status", code=1)
    assert f"schema version: {latest + 1}" in out and "newer" in out


# --- (e) concurrent writers --------------------------------------------------------

WRITERS = 20


async def _make_counter(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, "
                                "n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.asyncio
async def test_sqlite_read_modify_write_is_serialised(db):
    await _make_counter(db)

    async def bump():
        async with db.write() as conn:
            n = (await conn.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar()
            await asyncio.sleep(0.001)          # let the other writers try to interleave
            await conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    await asyncio.wait_for(asyncio.gather(*[bump() for _ in range(WRITERS)]), 60)
    assert await _count(db) == WRITERS


@pytest.mark.asyncio
async def test_concurrent_increments(db):
    await _make_counter(db)

    async def bump():
        async with db.write() as conn:
            await conn.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))

    await asyncio.wait_for(asyncio.gather(*[bump() for _ in range(WRITERS)]), 60)
    assert await _count(db) == WRITERS


# --- (f) foreign keys --------------------------------------------------------------

@pytest.mark.asyncio
async def test_foreign_key_violation_is_rejected(ready):
    with pytest.raises(IntegrityError):
        async with ready.write() as conn:
            await conn.execute(tables.project.insert().values(
                id="p1", name="orphan", domain_id="no-such-domain", created_at=NOW))
    async with ready.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM project"))).scalar() == 0


@pytest.mark.asyncio
async def test_foreign_key_cascade(ready):
    async with ready.write() as conn:
        await conn.execute(tables.role.insert(), [{"id": "r1", "name": "admin"},
                                                  {"id": "r2", "name": "member"}])
        await conn.execute(tables.implied_role.insert().values(
            prior_role_id="r1", implied_role_id="r2"))
    async with ready.write() as conn:
        await conn.execute(tables.role.delete().where(tables.role.c.id == "r2"))
    async with ready.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM implied_role"))).scalar() == 0
