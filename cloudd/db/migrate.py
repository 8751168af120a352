"""Schema creation and upgrades: schema.sql plus numbered migration files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text

from cloudd.db.engine import Database

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema.sql"
MIGRATIONS_DIR = ROOT / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class SchemaError(Exception):
    """The database cannot be used by this cloudd as it stands."""


@dataclass(frozen=True)
class Status:
    current: int | None   # None: the database is empty
    latest: int

    @property
    def pending(self) -> int:
        return 0 if self.current is None else max(0, self.latest - self.current)


def split_statements(sql: str) -> list[str]:
    """Split a schema file into statements (each ends with ';' at a line end)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [p.strip() for p in parts if p.strip()]


def migrations() -> list[tuple[int, Path]]:
    found = []
    if MIGRATIONS_DIR.is_dir():
        for path in MIGRATIONS_DIR.iterdir():
            m = _MIGRATION_NAME.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
    return sorted(found)


def latest_version() -> int:
    found = migrations()
    return found[-1][0] if found else 1


async def status(db: Database) -> Status:
    async with db.read() as conn:
        has_table = await conn.run_sync(
            lambda c: inspect(c).has_table("schema_version"))
        if not has_table:
            return Status(None, latest_version())
        version = (await conn.execute(text("SELECT max(version) FROM schema_version"))).scalar()
    return Status(version, latest_version())


async def _run_script(db: Database, sql: str) -> None:
    async with db.write() as conn:
        for stmt in split_statements(sql):
            await conn.exec_driver_sql(stmt)


async def init(db: Database) -> bool:
    """Create the schema in an empty database. Returns False if it was there."""
    st = await status(db)
    if st.current is not None:
        return False
    await _run_script(db, SCHEMA_FILE.read_text())
    return True


async def upgrade(db: Database) -> list[int]:
    """Apply every migration newer than the database. Returns those applied."""
    st = await status(db)
    if st.current is None:
        await init(db)
        return []
    check_not_newer(st)
    applied = []
    for number, path in migrations():
        if number > st.current:
            await _run_script(db, path.read_text())
            applied.append(number)
    return applied


def check_not_newer(st: Status) -> None:
    if st.current is not None and st.current > st.latest:
        raise SchemaError(
            f"the database is at schema version {st.current}, newer than this "
            f"cloudd understands ({st.latest}); run a newer cloudd or restore a backup")


async def prepare(db: Database) -> Status:
    """What `cloudd serve` does: create an empty database, refuse a newer or stale one."""
    await init(db)
    st = await status(db)
    check_not_newer(st)
    if st.pending:
        raise SchemaError(
            f"the database is at schema version {st.current}; this cloudd needs "
            f"{st.latest}: run `cloudd db upgrade` first")
    return st
