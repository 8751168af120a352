"""API requests first: background actors run fewer steps at once while a user waits.

The process has one event loop. Each turn of the loop runs every callback
that is ready, so a round trip's answer (a database reply, a client's
request) waits for all the others queued with it. A mass boot fills the
turns with the conductor's steps, and every API request then needs several
long turns: on PostgreSQL at 10 clients a loop turn took about 8 ms, and a
create waited through four or five of them.

``request()`` counts the service API requests in flight (the web
middleware enters it for each one). ``Slots`` is a semaphore for background
work whose size is ``busy`` while an API request is in flight or ended less
than ``GRACE_SECONDS`` ago, and ``idle`` otherwise: the conductor keeps few
steps in the loop while users wait, and all of them once nobody does. Steps
already running finish; only new ones wait. Background work is never
stopped outright (``busy`` is at least 1), so a long request (an image
upload of minutes) slows builds but does not stop them. The count is per
process, like the event loop it protects.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from contextlib import contextmanager

GRACE_SECONDS = 0.005   # busy for this long after the last request ends

_in_flight = 0
_quiet_from = 0.0       # the loop time from which no request counts as recent
_slots: weakref.WeakSet[Slots] = weakref.WeakSet()


def in_flight() -> int:
    """Service API requests being handled right now."""
    return _in_flight


def busy() -> bool:
    """An API request is in flight, or one ended less than GRACE_SECONDS
    ago: clients that send one request after another keep the loop short
    between their requests, too."""
    return bool(_in_flight) or asyncio.get_running_loop().time() < _quiet_from


@contextmanager
def request():
    """Count one API request for as long as the block runs."""
    global _in_flight, _quiet_from
    _in_flight += 1
    try:
        yield
    finally:
        _in_flight -= 1
        if _in_flight == 0:
            loop = asyncio.get_running_loop()
            _quiet_from = loop.time() + GRACE_SECONDS
            loop.call_at(_quiet_from, _wake_all)


def _wake_all() -> None:
    if not busy():
        for slots in list(_slots):
            slots._wake()


class Slots:
    """An asyncio semaphore of ``idle`` slots, ``busy`` while API requests are in flight."""

    def __init__(self, idle: int, busy: int) -> None:
        if not 1 <= busy <= idle:
            raise ValueError(f"need 1 <= busy ({busy}) <= idle ({idle})")
        self.idle, self.busy = idle, busy
        self.used = 0
        self._waiters: deque[asyncio.Future] = deque()
        _slots.add(self)

    def limit(self) -> int:
        return self.busy if busy() else self.idle

    async def acquire(self) -> None:
        if self.used < self.limit() and not self._waiters:
            self.used += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter                # _wake() counted this slot as used
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self.release()          # handed over as it was cancelled
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.used += 1
                waiter.set_result(None)
