"""In-memory copies of what token validation reads, dropped on every identity write.

Validating a token needs the user and its domain, the scope's project or
domain, the roles held there (grants, inherited grants, implied roles), the
application credential if any, and the revocation events. All of it changes
only through the identity API of this process, and every write there ends in
``IdentityService.changed()`` (``IdentityService.write()`` calls it when its
transaction ends), which calls :meth:`IdentityCache.clear`. So a revocation,
a removed grant or a disabled user or project takes effect on the very next
validation, as if nothing were cached.

Two guards keep a stale entry from slipping in:

* every load notes the generation it started in, and its result is kept only
  if no ``clear()`` happened meanwhile (a load that read the database before
  a write committed and finished after it is thrown away);
* entries live at most ``max_age`` seconds, a bound on staleness should
  anything ever write the identity tables behind this process's back.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# (user_id, scope kind, scope id, application credential id)
PrincipalKey = tuple[str, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Principal:
    """Everything a token of one (user, scope, credential) resolves to, but its
    own times, methods and audit ids. Treat the dicts and lists as read-only."""

    user_name: str
    user_domain_id: str
    user_domain_name: str
    roles: list[dict]
    project: dict | None = None
    domain: dict | None = None
    app_cred: dict | None = None
    cred_expires_at: dt.datetime | None = None


class Revocations:
    """The revocation events, indexed the way ``_revoked`` matches them."""

    __slots__ = ("by_audit", "by_project", "by_user")

    def __init__(self, rows: Iterable) -> None:
        # Each key maps to the latest issued_before: a token is revoked by an
        # event when it was issued at or before the event's issued_before.
        self.by_audit: dict[str, dt.datetime] = {}
        self.by_user: dict[tuple[str, str | None], dt.datetime] = {}
        self.by_project: dict[str, dt.datetime] = {}
        for audit_id, user_id, project_id, issued_before in rows:
            if audit_id is not None:
                if user_id is None:
                    _keep_latest(self.by_audit, audit_id, issued_before)
            elif user_id is not None:
                _keep_latest(self.by_user, (user_id, project_id), issued_before)
            elif project_id is not None:
                _keep_latest(self.by_project, project_id, issued_before)

    def revoked(self, user_id: str, project_id: str | None, audit_ids: list[str],
                issued_at: dt.datetime) -> bool:
        found = []
        if audit_ids:
            found.append(self.by_audit.get(audit_ids[0]))
        found.append(self.by_user.get((user_id, None)))
        if project_id is not None:
            found.append(self.by_user.get((user_id, project_id)))
            found.append(self.by_project.get(project_id))
        return any(when is not None and when >= issued_at for when in found)


def _keep_latest(index: dict, key, when: dt.datetime) -> None:
    old = index.get(key)
    if old is None or when > old:
        index[key] = when


# A principal that does not validate (user or scope gone or disabled, no role).
INVALID = object()


class IdentityCache:
    def __init__(self, max_age: float = 60.0, max_entries: int = 10_000,
                 clock=time.monotonic) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self.generation = 0
        self._born = clock()
        self._principals: dict[PrincipalKey, Any] = {}
        self._revocations: Revocations | None = None

    def clear(self) -> None:
        """Forget everything (an identity write happened)."""
        self.generation += 1
        self._born = self._clock()
        self._principals = {}
        self._revocations = None

    def _fresh(self) -> None:
        if self._clock() - self._born > self.max_age:
            self.clear()

    # Each getter returns None when the value has to be loaded; the loader then
    # hands it back with the generation it read at (see ``put_*``).

    def principal(self, key: PrincipalKey):
        """A Principal, INVALID, or None (not cached)."""
        self._fresh()
        return self._principals.get(key)

    def put_principal(self, key: PrincipalKey, value, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self._principals) >= self.max_entries:
            self._principals = {}
        self._principals[key] = value

    def revocations(self) -> Revocations | None:
        self._fresh()
        return self._revocations

    def put_revocations(self, value: Revocations, generation: int) -> None:
        if generation == self.generation:
            self._revocations = value
