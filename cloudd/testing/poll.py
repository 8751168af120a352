"""Polling for tests and benchmarks: the first true result of a check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait(check: Callable[[], T], what: str, timeout: float = 60.0, *,
         interval: float = 0.5, ignore: tuple[type[BaseException], ...] = ()) -> T:
    """``check()``'s first true result, polled every ``interval`` seconds; an
    exception of ``ignore`` counts as not yet. AssertionError naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """The event-loop twin of ``wait``: ``predicate()``'s (awaited, when it
    returns a coroutine) first true result; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)
