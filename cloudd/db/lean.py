"""SQLAlchemy's asyncio engine without its ORM (about 5.6 MB of resident memory).

``sqlalchemy.ext.asyncio/__init__.py`` imports ``AsyncSession`` and with it the
whole of ``sqlalchemy.orm`` (38 modules), which cloudd never uses: it runs
SQLAlchemy Core on ``AsyncEngine``/``AsyncConnection`` only. :func:`install`
registers that package with its ``__init__`` not yet run. Names from
``.engine`` and ``.result`` (everything Core needs) are served from those
submodules; asking for any other name (``AsyncSession``, ...) runs the real
``__init__`` then, so the package behaves exactly as usual, only later.

If something imported the package before cloudd did, nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

PACKAGE = "sqlalchemy.ext.asyncio"
_FROM = {
    "engine": ("async_engine_from_config", "AsyncConnection", "AsyncEngine",
               "AsyncTransaction", "create_async_engine", "create_async_pool_from_url"),
    "result": ("AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"),
}
_WHERE = {name: sub for sub, names in _FROM.items() for name in names}
# The package's own submodules (``from . import exc`` asks the package first).
_SUBMODULES = ("base", "engine", "exc", "result", "scoping", "session")


def install() -> None:
    if PACKAGE in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except ImportError:
        return
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    state = {"complete": False}

    def __getattr__(name: str):
        sub = _WHERE.get(name)
        if sub is not None:
            value = getattr(importlib.import_module(f"{PACKAGE}.{sub}"), name)
            setattr(module, name, value)
            return value
        if name in _SUBMODULES:
            return importlib.import_module(f"{PACKAGE}.{name}")
        if name.startswith("__") or state["complete"]:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        # Anything else (the ORM session API): run the real __init__ now.
        state["complete"] = True
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[PACKAGE] = module
    parent, _, child = PACKAGE.rpartition(".")
    setattr(sys.modules[parent], child, module)
    # What the real __init__ does last: set up the greenlet bridge.
    from sqlalchemy.util import concurrency
    concurrency._concurrency_shim._initialize()
