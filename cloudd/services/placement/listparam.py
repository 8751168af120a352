"""A list of strings as ONE bound parameter, so a statement's SQL never changes.

``column.in_(values)`` renders one placeholder per value on every execution,
and asyncpg prepares a new statement for each list length. Here the list is a
single parameter instead: ``col = ANY(:names)`` (a text array) on PostgreSQL,
``col IN (SELECT value FROM json_each(:names))`` (a JSON text) on SQLite. A
statement built with :func:`member` is compiled once by SQLAlchemy and
prepared once per connection by asyncpg, whatever the list.

Statements are built per dialect (``conn.dialect.name``) and kept: see
:func:`statement`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

POSTGRESQL = "postgresql"


def member(col, name: str, dialect: str):
    """``col`` is one of the strings bound as ``name`` (see :func:`value`)."""
    if dialect == POSTGRESQL:
        # imported here: a SQLite server need not load PostgreSQL's dialect
        from sqlalchemy.dialects.postgresql import ARRAY

        return col == any_(bindparam(name, type_=ARRAY(String)))
    each = func.json_each(bindparam(name, type_=String)).table_valued("value")
    return col.in_(select(each.c.value))


def value(values: Iterable[str], dialect: str):
    """The bound value for a :func:`member` parameter."""
    items = list(values)
    return items if dialect == POSTGRESQL else json.dumps(items)


_BUILT: dict[tuple[Callable, str], object] = {}


def statement(build: Callable[[str], object], conn: AsyncConnection):
    """``build(dialect)``, made once per dialect and then reused."""
    dialect = conn.dialect.name
    key = (build, dialect)
    stmt = _BUILT.get(key)
    if stmt is None:
        stmt = _BUILT[key] = build(dialect)
    return stmt
