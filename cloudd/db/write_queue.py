"""SQLite's one writer at a time, queued in this process with API requests first.

SQLite runs one write transaction at a time, so this process's writers queue
here before they begin (``Database.write``). There are two queues: writes
made while serving an API request (``foreground()``, set by the web
middleware for the service APIs) and everything else (the conductor, the
scheduler, the agent hub). A freed turn goes to the oldest API write first,
so a user's request waits for at most the write in progress, not for the
whole backlog of a mass boot. So that background work is never starved, a
background writer gets every ``FAIR_EVERY``-th turn while one is waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque

FAIR_EVERY = 4

_FOREGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("cloudd_foreground",
                                                                   default=False)


def foreground() -> contextvars.Token:
    """Mark the current task (an API request) and the tasks it starts as
    foreground, until ``background(token)``."""
    return _FOREGROUND.set(True)


def background(token: contextvars.Token) -> None:
    _FOREGROUND.reset(token)


def is_foreground() -> bool:
    return _FOREGROUND.get()


class WriteQueue:
    """An asyncio lock with two FIFO queues of waiters (API first)."""

    def __init__(self) -> None:
        self._held = False
        self._queues: tuple[deque[asyncio.Future], deque[asyncio.Future]] = (deque(), deque())
        self._turns_since_background = 0

    async def acquire(self) -> None:
        if not self._held and not any(self._queues):
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queues[0 if is_foreground() else 1].append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()          # the turn was handed over as it was cancelled
            else:
                for queue in self._queues:
                    if waiter in queue:
                        queue.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the turn to the next waiter (it stays held) or free it."""
        api, background = self._queues
        order = (api, background)
        if background and self._turns_since_background >= FAIR_EVERY - 1:
            order = (background, api)
        for queue in order:
            while queue:
                waiter = queue.popleft()
                if waiter.done():
                    continue
                self._turns_since_background = 0 if queue is background else \
                    self._turns_since_background + 1
                waiter.set_result(None)
                return
        self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc) -> None:
        self.release()
