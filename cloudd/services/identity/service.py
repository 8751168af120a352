"""The identity service object other parts of cloudd hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.config import Config
from cloudd.db import Database
from cloudd.services.identity.cache import IdentityCache
from cloudd.services.identity.fernet import KeyRepository
from cloudd.services.identity.tokens import Token, TokenProvider


class IdentityService:
    def __init__(self, cfg: Config, db: Database) -> None:
        self.config = cfg
        self.db = db
        self.keys = KeyRepository(cfg.data_dir / "fernet-keys",
                                  cfg.identity.fernet_max_active_keys)
        self.cache = IdentityCache()
        self.tokens = TokenProvider(self.keys, cfg.identity.token_expiration,
                                    cfg.identity.token_cache_seconds, self.cache)

    def setup_keys(self) -> bool:
        return self.keys.setup()

    async def validate(self, token: str, *, use_cache: bool = True) -> Token:
        """The caller behind a token, or ApiError(404) when it is not valid."""
        return await self.tokens.validate(self.db.read, token, use_cache=use_cache)

    def changed(self) -> None:
        """Something tokens depend on changed: no cached validation, and no cached
        user, project, domain, role, grant or revocation, may outlive it."""
        self.tokens.invalidate_cache()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on identity data: caches are dropped when it ends
        (committed or not), so the next validation reads what it wrote."""
        try:
            async with self.db.write() as conn:
                yield conn
        finally:
            self.changed()
