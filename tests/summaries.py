"""Compatibility figures printed at the end of every test run.

Counted from test reports on the process that prints the summary, so the
figures are right with pytest-xdist too (worker processes forward their
reports; module variables in a worker would never reach the summary):

- Placement's gabbi suite: passed / known failures per backend;
- Tempest: the summary and skip reasons the tempest test attaches to its
  report as a user property.
"""

from __future__ import annotations

from collections import Counter

_GABBI = "test_gabbits.py::test_gabbi["
_STATS: dict[str, Counter] = {}
_TEMPEST: list[str] = []


def pytest_runtest_logreport(report):
    for name, value in getattr(report, "user_properties", []):
        if name == "tempest_summary" and report.when == "call" and value not in _TEMPEST:
            _TEMPEST.append(value)
    if _GABBI not in report.nodeid:
        return
    ident = report.nodeid.split(_GABBI, 1)[1]
    if ":" not in ident:
        return
    stats = _STATS.setdefault(ident.split(":", 1)[0], Counter())
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            stats["xfailed" if report.skipped else "failed"] += 1  # strict XPASS fails
        elif report.passed:
            stats["passed"] += 1
        elif report.skipped:
            stats["skipped"] += 1
        else:
            stats["failed"] += 1


def _line(label: str, c: Counter) -> str:
    total = sum(c.values())
    text = f"{label}: {c['passed']} passed, {c['xfailed']} xfailed (known), of {total}"
    extra = [f"{c[k]} {k}" for k in ("failed", "skipped") if c[k]]
    return text + (f" ({', '.join(extra)})" if extra else "")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    if _STATS:
        tr.write_sep("-", "Placement gabbi compatibility")
        total = Counter()
        for backend in sorted(_STATS):
            total.update(_STATS[backend])
            tr.write_line(_line(f"placement gabbi [{backend}]", _STATS[backend]))
        tr.write_line(_line("placement gabbi", total))
        unmatched = getattr(config, "_placement_known_unmatched", [])
        if unmatched and not config.option.keyword:
            tr.write_line("known_failures.yaml names tests that do not exist: "
                          + ", ".join(f"{f}.yaml: {n}" for f, n in unmatched))
    if _TEMPEST:
        tr.write_sep("-", "Tempest compute API")
        for text in _TEMPEST:
            for line in text.splitlines():
                tr.write_line(line)
