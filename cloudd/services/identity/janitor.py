"""An actor that forgets revocation events no unexpired token can match."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete

from cloudd.db import Database
from cloudd.db import tables as t
from cloudd.runtime import Actor
from cloudd.services.identity import store

log = logging.getLogger("cloudd.identity")


class RevocationJanitor(Actor):
    name = "identity-janitor"

    def __init__(self, db: Database, token_expiration: int, interval: float = 3600.0) -> None:
        super().__init__()
        self.db = db
        self.token_expiration = token_expiration
        self.periodic_interval = interval

    async def recover(self) -> None:
        await self.purge()

    async def periodic(self) -> None:
        await self.purge()

    async def handle(self, msg) -> int:
        return await self.purge()

    async def purge(self) -> int:
        """Delete events older than the longest-lived token; returns how many."""
        horizon = store.utcnow() - dt.timedelta(seconds=self.token_expiration + 60)
        ev = t.revocation_event
        async with self.db.write() as conn:
            result = await conn.execute(delete(ev).where(ev.c.issued_before < horizon))
        if result.rowcount:
            log.info("purged expired revocation events",
                     extra={"fields": {"count": result.rowcount}})
        return result.rowcount
