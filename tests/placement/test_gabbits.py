"""Placement's own gabbi files against a live cloudd, on SQLite and PostgreSQL.

The YAML files come from the openstack-placement wheel on PyPI (version pinned
in cloudd/testing/gabbits.py, downloaded once into ~/.cache/cloudd, never
installed). Each file gets a fresh `cloudd serve` (empty database, noauth2,
Placement at the root of its own port) from tests/placement/fixtures.py,
seeded over the HTTP API as Placement's fixtures seed their database. Tests
in tests/placement/known_failures.yaml are xfail(strict=True): a listed test
that passes fails the run, so take it out of the list.

Usage: each YAML file is a keyword ("/NAME.yaml" selects exactly that file;
"NAME.yaml" any file whose name ends so), as is each backend:

    .venv/bin/pytest -q tests/placement -k "/resource-provider.yaml and sqlite"
    .venv/bin/pytest -q tests/placement -k "/traits.yaml or /traits-policy.yaml"
    .venv/bin/pytest -q tests/placement -k "rbac and postgresql"
    .venv/bin/pytest -q tests/placement -k "sqlite:inventory_post_an_inventory"
    .venv/bin/pytest -q tests/placement/test_gabbits.py          # everything
    .venv/bin/pytest -q tests/placement --runxfail -k "/cors.yaml and sqlite"

Test ids are BACKEND:FILE_test_name (lower case, spaces as underscores;
`--collect-only -q` lists them). A test selected alone runs its file's earlier
tests first (gabbi's prior tests). The run ends with
"placement gabbi: N passed, M xfailed (known), of T".

Environment: CLOUDD_GABBI_KEEP=1 keeps each cloud's data directory and its
serve log (path printed); CLOUDD_GABBI_ACCESS_LOG=true logs each request in
it; CLOUDD_GABBI_AHEAD=N starts the next N files' clouds ahead (default 2,
0 for one at a time); CLOUDD_GABBITS_CACHE=DIR moves the download cache.
Without PostgreSQL's binaries the postgresql tests skip, except on CI (CI set),
where they fail.
"""

from __future__ import annotations

import os
import unittest

import pytest
import yaml
from gabbi import handlers, reporter, suitemaker

from cloudd.testing.gabbits import PLACEMENT_VERSION, gabbits_dir
from tests.placement.fixtures import FixtureSet, PortReservation, postgres_available

BACKENDS = ["sqlite", "postgresql"]
RESULT = reporter.PyTestResult()  # turns gabbi's outcomes into pytest's
# "BACKEND:FILE" -> the file's GabbiSuite; conftest.py starts its fixtures
# before the file's first selected test and stops them after its last.
SUITES: dict[str, object] = {}


def test_gabbi(gabbi_case):
    """One gabbi test."""
    gabbi_case(RESULT)


def _load(path) -> dict:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    # Plain HTTP only: no CA bundle to load for each test's client (slow).
    data.setdefault("defaults", {})["cert_validate"] = False
    return data


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def pytest_generate_tests(metafunc):
    if metafunc.function is not test_gabbi:
        return
    try:
        directory = gabbits_dir()
    except Exception as exc:  # no network, say
        if os.environ.get("CI"):
            raise
        metafunc.parametrize("gabbi_case", [pytest.param(
            None, id="gabbits-unavailable", marks=pytest.mark.skip(
                reason=f"Placement {PLACEMENT_VERSION}'s gabbi files unavailable: {exc}"))])
        return
    loader = unittest.TestLoader()
    handler_objects = [h() for h in handlers.RESPONSE_HANDLERS]
    no_pg = postgres_available()
    params = []
    for backend in BACKENDS:
        marks = []
        if backend == "postgresql" and no_pg and not os.environ.get("CI"):
            marks = [pytest.mark.skip(reason=no_pg)]
        for path in sorted(directory.glob("*.yaml")):
            # One port per file: reserved now, handed to the file's fixture.
            reservation = PortReservation()
            key = f"{backend}:{path.stem}"
            SUITES[key] = suite = suitemaker.test_suite_from_dict(
                loader, path.stem, _load(path), str(directory),
                "127.0.0.1", reservation.port, FixtureSet(backend, reservation, key), None,
                handlers=handler_objects, test_loader_name=backend)
            for case in suite:
                case.suite_key = key
                params.append(pytest.param(case, marks=marks,
                                           id=f"{backend}:{case.__class__.__name__}"))
    metafunc.parametrize("gabbi_case", params)
