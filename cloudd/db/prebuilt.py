"""Statements built once and run with bound values, for the hot paths.

Building a SQLAlchemy Core statement per call (``update(t).where(...)
.values(...)``) and computing its cache key costs more than running it: on
the benchmark machine an UPDATE built per call takes about 360 µs of CPU,
the same UPDATE built once and executed with bound values about 150 µs
(``bench/compute.py`` runs some twenty per server build). A statement
object built once keeps its cache key (SQLAlchemy memoizes it on the
object), so each run only binds values.

The WHERE side binds ``w_<column>`` (``where()`` makes those keys); every
other key of the parameters is a column to SET (UPDATE) or to write
(INSERT): SQLAlchemy derives those clauses from the parameters' keys.
The bound values take their column's type, as ``column == value`` does.
"""

from __future__ import annotations

import functools

from sqlalchemy import Table, bindparam, delete, insert, select, update

PREFIX = "w_"


def where(**values) -> dict:
    """Parameters for a prebuilt statement's WHERE side (``w_<column>``)."""
    return {PREFIX + k: v for k, v in values.items()}


def _clauses(table: Table, columns: tuple[str, ...], null: tuple[str, ...]) -> list:
    return [table.c[c] == bindparam(PREFIX + c) for c in columns] + \
        [table.c[c].is_(None) for c in null]


@functools.cache
def insert_into(table: Table):
    """INSERT INTO table (the parameters' keys)."""
    return insert(table)


@functools.cache
def update_where(table: Table, *columns: str, null: tuple[str, ...] = ()):
    """UPDATE table SET (the parameters' other keys) WHERE each of ``columns``
    equals its ``w_`` parameter and each of ``null`` IS NULL."""
    return update(table).where(*_clauses(table, columns, null))


@functools.cache
def select_where(table: Table, *columns: str, null: tuple[str, ...] = (),
                 for_update: bool = False, order_by: str | None = None):
    """SELECT * FROM table WHERE each of ``columns`` equals its ``w_``
    parameter (FOR UPDATE on PostgreSQL when asked; ordered by one column)."""
    stmt = select(table).where(*_clauses(table, columns, null))
    if for_update:
        stmt = stmt.with_for_update()
    if order_by:
        stmt = stmt.order_by(table.c[order_by])
    return stmt


@functools.cache
def delete_where(table: Table, *columns: str):
    """DELETE FROM table WHERE each of ``columns`` equals its ``w_`` parameter."""
    return delete(table).where(*_clauses(table, columns, ()))
