"""What every table module shares: the metadata and the id column."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()


def _id(name: str = "id", **kw) -> Column:
    return Column(name, String(64), primary_key=True, **kw)


schema_version = Table("schema_version", metadata,
                       Column("version", Integer, nullable=False))
