"""Format checkers for jsonschema, declared at import and made on first use.

Modules declare their formats at import time, as with jsonschema's own
``FormatChecker.checks``; jsonschema itself (about 2 MB with its
dependencies) loads only when the first request is validated, so an idle
server does not carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LazyFormats:
    def __init__(self) -> None:
        self._checks: dict[str, tuple[Callable[[Any], bool], Any]] = {}
        self._made = None

    def checks(self, name: str, raises: Any = ()) -> Callable:
        """Register ``fn`` for format ``name`` (as FormatChecker.checks)."""
        def register(fn: Callable[[Any], bool]) -> Callable[[Any], bool]:
            self._checks[name] = (fn, raises)
            self._made = None
            return fn
        return register

    def get(self):
        """The jsonschema.FormatChecker with every registered format."""
        if self._made is None:
            import jsonschema

            checker = jsonschema.FormatChecker()
            for name, (fn, raises) in self._checks.items():
                checker.checks(name, raises)(fn)
            self._made = checker
        return self._made
