"""Scope types, enforce_scope and deprecated rules, with oslo.policy as the oracle.

Placement's whole rule set (cloudd.services.placement.policies) is checked
against oslo.policy's Enforcer given the same RuleDefaults (check strings,
deprecated rules, scope_types): every rule, every kind of caller, both
settings of enforce_new_defaults, with and without a policy file.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cloudd.policy import Enforcer, InvalidScope, PolicyNotAuthorized, token_scope
from cloudd.server import policy_defaults, policy_scope_types
from cloudd.services.placement.policies import DEPRECATED, POLICIES, SCOPE_TYPES

oslo_cfg = pytest.importorskip("oslo_config.cfg")
oslo_policy = pytest.importorskip("oslo_policy.policy")


def creds(roles=(), project_id="p1", system=False, domain_id=None) -> dict:
    return {"user_id": "u1", "project_id": None if system or domain_id else project_id,
            "domain_id": domain_id, "system_scope": "all" if system else None,
            "roles": list(roles), "is_admin_project": True}


# --- the Enforcer's own behaviour ---------------------------------------------

RULES = {"admin": "role:admin", "get": "rule:admin", "sys": "role:admin",
         "any": "@"}
SCOPES = {"get": ["project"], "sys": ["system"], "admin": ["system"]}


def test_token_scope() -> None:
    assert token_scope(creds()) == "project"
    assert token_scope(creds(system=True)) == "system"
    assert token_scope({"system": "all"}) == "system"
    assert token_scope(creds(domain_id="d1")) == "domain"
    assert token_scope({}) == "project"


def test_enforce_scope_refuses_other_scopes() -> None:
    enforcer = Enforcer(RULES, scope_types=SCOPES, enforce_scope=True)
    admin_project, admin_system = creds(["admin"]), creds(["admin"], system=True)
    assert enforcer.enforce("get", {}, admin_project) is True
    assert enforcer.enforce("get", {}, admin_system) is False
    assert enforcer.enforce("get", {}, creds(["admin"], domain_id="d1")) is False
    assert enforcer.enforce("sys", {}, admin_system) is True
    assert enforcer.enforce("sys", {}, admin_project) is False
    # No scope_types: any scope (the rule still decides).
    assert enforcer.enforce("any", {}, admin_system) is True
    with pytest.raises(InvalidScope) as info:
        enforcer.authorize("get", {}, admin_system)
    assert isinstance(info.value, PolicyNotAuthorized)  # services answer 403
    assert info.value.rule == "get"
    assert info.value.token_scope == "system" and info.value.scope_types == ("project",)


def test_scope_of_referenced_rules_is_not_checked() -> None:
    """Only the rule enforced is scope-checked (oslo.policy's registered rule);
    "admin" is system-only, yet "get" refers to it for project tokens."""
    enforcer = Enforcer(RULES, scope_types=SCOPES, enforce_scope=True)
    assert enforcer.enforce("get", {}, creds(["admin"])) is True


def test_scope_not_enforced_only_warns(caplog) -> None:
    enforcer = Enforcer(RULES, scope_types=SCOPES, enforce_scope=False)
    with caplog.at_level(logging.WARNING, logger="cloudd.policy.enforcer"):
        assert enforcer.enforce("get", {}, creds(["admin"], system=True)) is True
    assert "failed scope check" in caplog.text
    assert enforcer.enforce("get", {}, creds(["member"], system=True)) is False
    with pytest.raises(PolicyNotAuthorized) as info:
        enforcer.authorize("get", {}, creds(["member"], system=True))
    assert not isinstance(info.value, InvalidScope)


def test_policy_file_does_not_lift_scope_types(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({"get": "@"}))
    enforcer = Enforcer(RULES, policy_file, scope_types=SCOPES, enforce_scope=True)
    assert enforcer.enforce("get", {}, creds([])) is True
    assert enforcer.enforce("get", {}, creds([], system=True)) is False


# --- Placement's rules against oslo.policy ---------------------------------------

def _settings(new_defaults: bool, enforce_scope: bool = True):
    return SimpleNamespace(policy=SimpleNamespace(enforce_new_defaults=new_defaults,
                                                  enforce_scope=enforce_scope))


def _spec():
    return SimpleNamespace(policies=POLICIES, deprecated_policies=DEPRECATED,
                           scope_types=SCOPE_TYPES)


def _oslo(new_defaults: bool, policy_file: Path | None):
    conf = oslo_cfg.ConfigOpts()
    conf([], default_config_files=[])
    from oslo_policy import opts
    opts.set_defaults(conf)
    if policy_file is not None:
        conf.set_override("policy_file", str(policy_file), group="oslo_policy")
    else:
        conf.set_override("policy_file", "/nonexistent/policy.yaml", group="oslo_policy")
    conf.set_override("enforce_new_defaults", new_defaults, group="oslo_policy")
    enforcer = oslo_policy.Enforcer(conf)
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    for name, check in POLICIES.items():
        deprecated = None
        if name in DEPRECATED:
            # Placement names its deprecated rule "rule:admin_api".
            deprecated = oslo_policy.DeprecatedRule(
                name="rule:admin_api", check_str=DEPRECATED[name],
                deprecated_reason="legacy", deprecated_since="W")
        enforcer.register_default(oslo_policy.RuleDefault(
            name, check, scope_types=SCOPE_TYPES.get(name), deprecated_rule=deprecated))
    enforcer.load_rules()
    return enforcer


def _oslo_says(enforcer, rule: str, target: dict, cred: dict) -> bool:
    try:
        return bool(enforcer.enforce(rule, target, dict(cred), do_raise=True))
    except (oslo_policy.PolicyNotAuthorized, oslo_policy.InvalidScope):
        return False


ROLE_SETS = [(), ("reader",), ("member", "reader"), ("admin", "member", "reader"),
             ("service",), ("admin",)]
CALLERS = [creds(roles, project_id=p, system=s)
           for roles, p, s in itertools.product(ROLE_SETS, ("p1", "p2"), (False, True))]
TARGETS = [{"project_id": "p1"}, {}]


@pytest.mark.parametrize("new_defaults", [True, False])
@pytest.mark.parametrize("with_file", [False, True])
def test_placement_rules_match_oslo_policy(new_defaults: bool, with_file: bool,
                                           tmp_path: Path) -> None:
    policy_file = None
    if with_file:
        policy_file = tmp_path / "policy.yaml"
        # An override replaces the default and its deprecated rule alike.
        policy_file.write_text(yaml.safe_dump({
            "project_reader_api": "role:member and project_id:%(project_id)s",
            "placement:traits:list": "@"}))
    specs = [_spec()]
    ours = Enforcer(policy_defaults(_settings(new_defaults), specs), policy_file,
                    scope_types=policy_scope_types(specs), enforce_scope=True)
    oslo = _oslo(new_defaults, policy_file)
    checked = 0
    for rule in POLICIES:
        for cred, target in itertools.product(CALLERS, TARGETS):
            expected = _oslo_says(oslo, rule, target, cred)
            assert ours.enforce(rule, target, cred) is expected, (rule, cred, target)
            checked += expected
    assert checked > 50  # not all denials


def test_placement_scope_types_cover_every_rule() -> None:
    assert set(SCOPE_TYPES) == set(POLICIES) - {"project_reader_api"}
    assert all(types == ["project"] for types in SCOPE_TYPES.values())
    assert POLICIES["placement:reshaper:reshape"] == "rule:service_api"
