"""Placement gabbi run: keywords per YAML file, known failures, the summary line."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from cloudd.db import Database, migrate
from cloudd.services.placement.sync import sync_standards
from tests.placement import fixtures

KNOWN_FAILURES = Path(__file__).with_name("known_failures.yaml")
_MODULE = "test_gabbits.py::test_gabbi["


def load_known_failures() -> dict[tuple[str, str], dict]:
    """{(file stem, test name): {"reason": str, "backends": [..] or None}}."""
    data = yaml.safe_load(KNOWN_FAILURES.read_text()) or {}
    out = {}
    for filename, tests in data.items():
        for name, entry in (tests or {}).items():
            if isinstance(entry, str):
                entry = {"reason": entry}
            out[(Path(filename).stem, str(name))] = {
                "reason": entry["reason"], "backends": entry.get("backends")}
    return out


def _gabbi_case(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None or _MODULE not in item.nodeid:
        return None
    case = callspec.params.get("gabbi_case")
    return case if hasattr(case, "test_data") else None


# --- running each file's fixtures around its selected tests ------------------

class _Active:
    key: str | None = None
    suite = None
    error: BaseException | None = None


def _stop_active() -> None:
    suite, _Active.suite, _Active.key, _Active.error = _Active.suite, None, None, None
    if suite is not None:
        suite.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    case = _gabbi_case(item)
    if case is None:
        return
    if _Active.key != case.suite_key:
        from tests.placement.test_gabbits import RESULT, SUITES
        _stop_active()
        suite = SUITES[case.suite_key]
        _Active.key = case.suite_key
        fixtures.PREFETCH.advance(case.suite_key)
        try:
            suite.start(RESULT)
        except BaseException as exc:
            _Active.error = exc
            raise
        _Active.suite = suite
    elif _Active.error is not None:
        first_line = (str(_Active.error).splitlines() or [""])[0]
        raise RuntimeError(f"the fixture of {case.suite_key} failed to start (the "
                           f"file's first test shows why): {first_line}")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    case = _gabbi_case(item)
    if case is None:
        return
    following = _gabbi_case(nextitem) if nextitem is not None else None
    if following is None or following.suite_key != case.suite_key:
        _stop_active()


def pytest_collection_modifyitems(config, items):
    known = load_known_failures()
    seen = set()
    for item in items:
        case = _gabbi_case(item)
        if case is None:
            continue
        stem, name = case.test_base_name, case.test_data["name"]
        backend = item.callspec.id.split(":", 1)[0]
        # -k matches substrings: "traits.yaml" also selects
        # resource-provider-any-traits.yaml, "/traits.yaml" only traits.yaml.
        item.extra_keyword_matches.add(f"/{stem}.yaml")
        item.extra_keyword_matches.add(backend)
        entry = known.get((stem, name))
        if entry:
            seen.add((stem, name))
            if entry["backends"] is None or backend in entry["backends"]:
                item.add_marker(pytest.mark.xfail(reason=entry["reason"], strict=True))
    config._placement_known_unmatched = sorted(set(known) - seen)


def pytest_collection_finish(session):
    """The order files will run in, for starting their clouds ahead of time."""
    plan, seen = [], set()
    for item in session.items:
        case = _gabbi_case(item)
        if case is None or case.suite_key in seen:
            continue
        seen.add(case.suite_key)
        skipped = any(m.name == "skip" for m in item.iter_markers())
        if len(case.fixtures) == 1 and not skipped:
            plan.append((case.suite_key, case.fixtures[0]))
    fixtures.PREFETCH.set_plan(plan)


def pytest_sessionfinish(session, exitstatus):
    fixtures.PREFETCH.shutdown()
    _stop_active()
    fixtures.stop_postgres()


# --- a prepared database per backend, for the in-process placement tests ------

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def db(backend, database_url, tmp_path):
    database = Database(database_url(backend, tmp_path / "data"))
    await migrate.prepare(database)
    await sync_standards(database)
    yield database
    await database.close()
