"""Polling for tests and benchmarks: the first true result of a check."""

from __future__ import annotations

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
