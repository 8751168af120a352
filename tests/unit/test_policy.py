"""Tests for cloudd.policy, using oslo.policy as the oracle for semantics."""

from __future__ import annotations

import copy
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    import cloudd.policy  # noqa: F401
except ImportError:  # no rootdir conftest putting the project on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cloudd.policy import (
    Enforcer,
    PolicyNotAuthorized,
    flatten_target,
    parse_rule,
)
from cloudd.policy.parser import FalseCheck, TrueCheck

oslo_cfg = pytest.importorskip("oslo_config.cfg")
oslo_policy = pytest.importorskip("oslo_policy.policy")
oslo_shell = pytest.importorskip("oslo_policy.shell")

# Rules that the checks under test refer to with rule:NAME.
HELPERS = {
    "admin_required": "role:admin",
    "owner": "project_id:%(project_id)s",
    "system_reader": "role:reader and system_scope:all",
    "domain_match": "domain_id:%(target.project.domain_id)s",
    "negated": "not rule:admin_required",
}

CHECK_STRINGS = [
    "",
    "@",
    "!",
    "role:admin",
    "role:ADMIN",
    "role:Member",
    "rule:admin_required",
    "rule:owner",
    "rule:nonexistent",
    "rule:negated or rule:owner",
    "project_id:%(project_id)s",
    "user_id:%(user_id)s",
    "project_id:%(target.project.id)s",
    "domain_id:%(target.project.domain_id)s",
    "user_domain_id:%(target.user.domain_id)s",
    "system_scope:all",
    "system:all",
    "system_scope:None",
    "is_admin_project:True",
    "True:%(enabled)s",
    "'member':%(role.name)s",
    "'admin':%(target.role.name)s",
    "123:%(count)s",
    "roles:admin",
    "roles:Admin",
    "token.user.id:%(user_id)s",
    "role:%(role_name)s",
    "project_id:%(missing_key)s",
    "role:admin or role:member",
    "role:admin and project_id:%(project_id)s",
    "role:admin or role:member and project_id:%(project_id)s",
    "(role:admin or role:member) and project_id:%(project_id)s",
    "role:admin and role:member or role:reader and system_scope:all",
    "not role:admin",
    "not (role:admin or role:reader)",
    "not role:admin and not role:member",
    "not not role:member",
    "rule:admin_required or (role:member and rule:owner)",
    "rule:system_reader or rule:domain_match",
    "rule:admin_required and not rule:owner or rule:domain_match",
    "((role:admin))",
    "(role:admin or (role:member and (project_id:%(project_id)s)))",
    "role:admin AND project_id:%(project_id)s OR NOT role:reader",
    "@ and !",
    "! or @",
    "not !",
    "role:reader and system_scope:all or role:admin and domain_id:%(domain_id)s",
    # malformed: all of these must deny without raising
    "role:admin and",
    "or role:admin",
    "(role:admin",
    "role:admin)",
    "role:admin role:member",
    "   ",
    "admin",
    "'admin'",
    "'member':'x'",
    "not",
    "()",
    "role:admin and (not)",
    "role:admin or not",
]
CHECKS = {f"c{i:02d}": s for i, s in enumerate(CHECK_STRINGS)}


def _creds(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "user_id": None, "user_domain_id": None, "project_id": None,
        "project_domain_id": None, "domain_id": None, "system_scope": None,
        "roles": [], "is_admin_project": True,
    }
    base.update(kw)
    return base


CREDS = [
    _creds(user_id="u1", user_domain_id="d1", project_id="p1",
           project_domain_id="d1", roles=["admin", "member", "reader"]),
    _creds(user_id="u2", user_domain_id="d1", project_id="p1",
           project_domain_id="d1", roles=["member", "reader"],
           is_admin_project=False),
    _creds(user_id="u3", user_domain_id="d2", system_scope="all",
           roles=["reader"]),
    _creds(user_id="u4", user_domain_id="d1", domain_id="d1",
           roles=["Admin"], is_admin_project=False,
           token={"user": {"id": "u4"}}),
    _creds(),
]

TARGETS: list[dict[str, Any]] = [
    {},
    {"project_id": "p1", "user_id": "u1", "domain_id": "d1", "enabled": True,
     "role.name": "member", "role_name": "member", "count": 123},
    {"target": {"project": {"id": "p1", "domain_id": "d1"},
                "user": {"domain_id": "d1"}, "role": {"name": "admin"}},
     "project_id": "p2", "user_id": "u4", "enabled": False,
     "role": {"name": "member"}, "role_name": "ADMIN", "count": "123"},
    {"target": {"project": {"id": "p9", "domain_id": "d9"}},
     "project_id": "p9", "domain_id": "d9", "enabled": "True"},
]


def make_oslo(rules: dict[str, str]) -> Any:
    """An oslo.policy Enforcer with ``rules`` registered as defaults."""
    conf = oslo_cfg.ConfigOpts()
    conf([])
    enforcer = oslo_policy.Enforcer(conf)
    enforcer.register_defaults(
        [oslo_policy.RuleDefault(name, check) for name, check in rules.items()])
    return enforcer


def oslo_says(enforcer: Any, rule: str, target: dict[str, Any],
              creds: dict[str, Any]) -> bool:
    """oslo.policy's answer, fed the flattened target as keystone does."""
    flat = oslo_shell.flatten(copy.deepcopy(target))
    return bool(enforcer.enforce(rule, flat, copy.deepcopy(creds)))


@pytest.fixture(scope="module")
def enforcers() -> tuple[Enforcer, Any]:
    rules = {**HELPERS, **CHECKS}
    return Enforcer(rules), make_oslo(rules)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_matches_oslo_policy(name: str, enforcers: tuple[Enforcer, Any]) -> None:
    ours, oslo = enforcers
    mismatches = []
    for ci, creds in enumerate(CREDS):
        for ti, target in enumerate(TARGETS):
            expected = oslo_says(oslo, name, target, creds)
            got = ours.enforce(name, copy.deepcopy(target), copy.deepcopy(creds))
            if got is not expected:
                mismatches.append((ci, ti, expected, got))
    assert not mismatches, (CHECKS[name], "(creds, target, oslo, ours)", mismatches)


def test_oracle_table_is_not_trivial(enforcers: tuple[Enforcer, Any]) -> None:
    """Most checks must both pass and fail somewhere, or the table is weak."""
    ours, _ = enforcers
    mixed = 0
    for name in CHECKS:
        answers = {ours.enforce(name, t, c) for t in TARGETS for c in CREDS}
        mixed += len(answers) == 2
    assert mixed >= 30


def test_malformed_rules_parse_to_false() -> None:
    for text in CHECK_STRINGS[CHECK_STRINGS.index("role:admin and"):]:
        assert isinstance(parse_rule(text), FalseCheck), text
    assert isinstance(parse_rule(""), TrueCheck)
    assert isinstance(parse_rule(None), TrueCheck)
    assert isinstance(parse_rule(42), FalseCheck)
    assert isinstance(parse_rule(["role:admin"]), FalseCheck)


FUZZ_ATOMS = ["role:a", "role:B", "rule:ra", "rule:nb", "rule:nope", "@", "!",
              "'a':%(x)s", "x:%(x)s", "'q'", "junk"]
FUZZ_OPS = ["and", "or", "AND", "Or"]


def random_expr(rng: random.Random, depth: int = 0) -> list[str]:
    """Tokens of a random, mostly well-formed, rule."""
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return [rng.choice(FUZZ_ATOMS)]
    if pick < 0.5:
        return [rng.choice(["not", "NOT"]), *random_expr(rng, depth + 1)]
    if pick < 0.65:
        return ["(", *random_expr(rng, depth + 1), ")"]
    return [*random_expr(rng, depth + 1), rng.choice(FUZZ_OPS),
            *random_expr(rng, depth + 1)]


def random_rule(rng: random.Random) -> str:
    """Join tokens, sometimes gluing parens to words, sometimes breaking it."""
    tokens = random_expr(rng)
    if rng.random() < 0.3:  # make it (probably) malformed
        spot = rng.randrange(len(tokens) + 1)
        if rng.random() < 0.5 and spot < len(tokens):
            del tokens[spot]
        else:
            tokens.insert(spot, rng.choice(["(", ")", "and", "not", "@"]))
    out = ""
    for tok in tokens:
        glue = tok == ")" or out.endswith("(")
        out += tok if glue and rng.random() < 0.5 else " " + tok
    return out.strip() if rng.random() < 0.9 else out


def test_fuzz_against_oslo_policy() -> None:
    """Random rules must parse and evaluate exactly as oslo.policy does."""
    rng = random.Random(20240601)
    fuzz = {"ra": "role:a", "nb": "not role:b"}
    for i in range(800):
        fuzz[f"f{i}"] = random_rule(rng)
    ours, oslo = Enforcer(fuzz), make_oslo(fuzz)
    malformed = sum(isinstance(parse_rule(t), FalseCheck) for t in fuzz.values())
    assert 100 < malformed < 500  # both kinds are well represented
    roles_sets = [[], ["a"], ["b"], ["A", "b"]]
    for name, text in fuzz.items():
        for roles in roles_sets:
            for target in ({"x": "a"}, {}):
                creds = {"roles": roles, "x": "a"}
                expected = oslo_says(oslo, name, target, creds)
                assert ours.enforce(name, target, creds) is expected, (
                    text, roles, target)


@pytest.mark.parametrize("rules,creds", [
    ({"r": "rule:s", "s": "rule:r"}, {}),            # cycle: RecursionError
    ({"r": "foo(:x"}, {}),                            # kind is a SyntaxError
    ({"r": "project_id:%(project_id)d"}, {"project_id": "p"}),  # bad format
    ({"r": "user.id:x"}, {"user": "not-a-dict"}),     # str indexed by str
    ({"r": "role:x"}, {"roles": None}),               # roles not iterable
])
def test_denies_where_oslo_policy_raises(rules: dict[str, str],
                                         creds: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever oslo.policy raises
        oslo_says(make_oslo(rules), "r", {"project_id": "p"}, creds)
    assert Enforcer(rules).enforce("r", {"project_id": "p"}, creds) is False


def test_unknown_rule_denies() -> None:
    enforcer = Enforcer({"a": "@", "b": "rule:missing or !"})
    assert enforcer.enforce("a", {}, {}) is True
    assert enforcer.enforce("nope", {}, {}) is False
    assert enforcer.enforce("b", {}, {}) is False
    assert Enforcer({}).enforce("a", {}, {}) is False


def test_authorize() -> None:
    enforcer = Enforcer({"admin": "role:admin"})
    assert enforcer.authorize("admin", {}, {"roles": ["admin"]}) is None
    with pytest.raises(PolicyNotAuthorized) as info:
        enforcer.authorize("admin", {}, {"roles": ["member"]})
    assert info.value.rule == "admin"
    with pytest.raises(PolicyNotAuthorized):
        enforcer.authorize("unknown", {}, {"roles": ["admin"]})


def test_system_scope_and_creds_untouched() -> None:
    enforcer = Enforcer({"s": "system_scope:all", "t": "system:all"})
    creds = _creds(system_scope="all", roles=["reader"])
    assert enforcer.enforce("s", {}, creds) and enforcer.enforce("t", {}, creds)
    assert "system" not in creds
    assert not enforcer.enforce("s", {}, _creds(project_id="p1"))


def test_oslo_context_policy_values() -> None:
    context = pytest.importorskip("oslo_context.context")
    ctx = context.RequestContext(user_id="u1", project_id="p1",
                                 roles=["member"], system_scope="all")
    enforcer = Enforcer({"r": "role:member and project_id:%(project_id)s",
                         "s": "system_scope:all and user_id:u1"})
    assert enforcer.enforce("r", {"project_id": "p1"}, ctx.to_policy_values())
    assert enforcer.enforce("s", {}, ctx.to_policy_values())


def test_flatten_target() -> None:
    nested = {"a": {"b": {"c": 1}, "d": [{"e": 2}]}, "f": None}
    assert flatten_target(nested) == oslo_shell.flatten(copy.deepcopy(nested))
    flat = {"x": 1}
    assert flatten_target(flat) is flat


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime: int) -> None:
    """Write ``text`` and give the file a distinct mtime."""
    path.write_text(text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


MEMBER = _creds(project_id="p1", roles=["member"])
ADMIN = _creds(project_id="p1", roles=["admin"])


def test_override_file(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    write(policy_file, '"get": "role:member"\n', 1_000_000)
    clock = FakeClock()
    enforcer = Enforcer({"get": "role:admin", "list": "role:admin"},
                        policy_file, clock=clock)
    assert enforcer.enforce("get", {}, MEMBER)
    assert not enforcer.enforce("get", {}, ADMIN)
    assert enforcer.enforce("list", {}, ADMIN)  # default kept

    # Edits are picked up, but the file is stat'ed at most once a second.
    write(policy_file, '"get": "!"\n"list": "@"\n"new": "@"\n', 1_000_001)
    clock.now += 0.5
    assert enforcer.enforce("get", {}, MEMBER)
    clock.now += 0.6
    assert not enforcer.enforce("get", {}, MEMBER)
    assert enforcer.enforce("list", {}, MEMBER)
    assert enforcer.enforce("new", {}, {})

    # JSON works too (it is YAML).
    write(policy_file, json.dumps({"get": "role:admin or role:member"}),
          1_000_002)
    clock.now += 1.1
    assert enforcer.enforce("get", {}, MEMBER) and enforcer.enforce("get", {}, ADMIN)
    assert not enforcer.enforce("new", {}, {})

    # Removing the file reverts to the defaults.
    policy_file.unlink()
    clock.now += 1.1
    assert not enforcer.enforce("get", {}, MEMBER)
    assert enforcer.enforce("get", {}, ADMIN)


def test_override_file_real_clock(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    write(policy_file, "get: role:member\n", 2_000_000)
    enforcer = Enforcer({"get": "role:admin"}, policy_file, reload_interval=0)
    assert enforcer.enforce("get", {}, MEMBER)
    write(policy_file, "get: role:admin\n", 2_000_001)
    assert not enforcer.enforce("get", {}, MEMBER)


def test_broken_override_file(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    write(policy_file, "get: [unclosed\n", 3_000_000)
    enforcer = Enforcer({"get": "@"}, policy_file, reload_interval=0)
    assert not enforcer.enforce("get", {}, ADMIN)  # fail closed

    write(policy_file, "get: role:member\n", 3_000_001)
    assert enforcer.enforce("get", {}, MEMBER)

    write(policy_file, "- not a mapping\n", 3_000_002)
    assert enforcer.enforce("get", {}, MEMBER)  # last good version kept
    assert not enforcer.enforce("get", {}, ADMIN)


def test_missing_override_file(tmp_path: Path) -> None:
    enforcer = Enforcer({"get": "role:admin"}, tmp_path / "absent.yaml")
    assert enforcer.enforce("get", {}, ADMIN)
    assert not enforcer.enforce("get", {}, MEMBER)
