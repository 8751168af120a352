"""cloudd loads SQLAlchemy's asyncio engine without the ORM (cloudd/db/lean.py),
and the package still hands out every name when something asks for it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import cloudd.db
from cloudd.db import Database
import cloudd.services.identity.service
assert "sqlalchemy.orm" not in sys.modules, "the ORM was imported"
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncResult
from sqlalchemy.ext.asyncio.engine import AsyncConnection as Direct
assert AsyncConnection is Direct
assert "sqlalchemy.orm" not in sys.modules
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
assert "sqlalchemy.orm" in sys.modules and AsyncSession.__name__ == "AsyncSession"
import sqlalchemy.ext.asyncio as pkg
assert pkg.create_async_engine is cloudd.db.engine.create_async_engine
try:
    pkg.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("unknown names must raise AttributeError")
print("ok")
"""


def test_no_orm_until_asked_for():
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=False,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_an_engine_works_through_the_lean_package(tmp_path):
    code = f"""
import asyncio, sys
from sqlalchemy import text
from cloudd.db import Database
async def main():
    db = Database("sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalar() == 1
    await db.close()
asyncio.run(main())
assert "sqlalchemy.orm" not in sys.modules
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
