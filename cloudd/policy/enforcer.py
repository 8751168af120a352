"""The policy Enforcer: named rules from code defaults plus an override file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cloudd.policy.parser import Check, Context, parse_rule

LOG = logging.getLogger(__name__)

# What identifies one version of the override file (None: no file).
_FileSig = tuple[int, int, int] | None


class PolicyNotAuthorized(Exception):
    """Raised by :meth:`Enforcer.authorize` when a rule denies the request."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"Policy doesn't allow {rule} to be performed.")
        self.rule = rule


class InvalidScope(PolicyNotAuthorized):
    """The token's scope is not one the rule's ``scope_types`` allow (with
    scope enforced). A kind of PolicyNotAuthorized: services answer 403, as
    Placement and Nova turn oslo.policy's InvalidScope into one."""

    def __init__(self, rule: str, scope_types: tuple[str, ...], token_scope: str) -> None:
        super().__init__(rule)
        message = (f"{rule} requires a token scoped to {' or '.join(scope_types)}, "
                   f"not {token_scope}")
        self.args = (message,)
        self.scope_types = scope_types
        self.token_scope = token_scope


def token_scope(creds: Mapping[str, Any]) -> str:
    """The scope of the caller's token as oslo.policy tells it from creds."""
    if creds.get("system") or creds.get("system_scope"):
        return "system"
    if creds.get("domain_id"):
        return "domain"
    return "project"


def flatten_target(target: Mapping[str, Any]) -> Mapping[str, Any]:
    """Flatten nested mappings into dotted keys, as oslopolicy-checker does.

    ``{"target": {"project": {"id": "p"}}}`` becomes
    ``{"target.project.id": "p"}``; a flat target is returned as is.
    """
    if not any(isinstance(v, Mapping) for v in target.values()):
        return target
    flat: dict[Any, Any] = {}

    def walk(mapping: Mapping[Any, Any], prefix: str) -> None:
        for key, value in mapping.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, Mapping):
                walk(value, name)
            else:
                flat[name] = value

    walk(target, "")
    return flat


class Enforcer:
    """Evaluates named policy rules against a target and credentials.

    ``defaults`` maps rule names to check strings.  ``override_file``, if
    given, is a YAML (or JSON) mapping of rule names to check strings that
    replaces the matching defaults; it is re-read when it changes, checked at
    most once every ``reload_interval`` seconds.  A file that cannot be
    parsed is logged and ignored in favour of the last good version; if
    there never was one, every rule denies (fail closed, as oslo.policy's
    enforce would raise).  A missing file means defaults only.

    ``scope_types`` maps rule names to the token scopes they accept
    (``"project"``, ``"domain"``, ``"system"``), oslo.policy's RuleDefault
    scope_types. It applies to the rule being enforced (not to rules it
    refers to with ``rule:``), whatever the override file says for it. With
    ``enforce_scope`` a token of another scope is denied before the rule is
    evaluated (:class:`InvalidScope` from :meth:`authorize`); without, the
    mismatch is only logged, as oslo.policy's ``[oslo_policy] enforce_scope``.
    """

    def __init__(
        self,
        defaults: Mapping[str, str],
        override_file: Path | None = None,
        *,
        scope_types: Mapping[str, Sequence[str]] | None = None,
        enforce_scope: bool = False,
        reload_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._defaults: dict[str, Check] = {
            name: parse_rule(text) for name, text in defaults.items()}
        self._override_file = (
            Path(override_file) if override_file is not None else None)
        self._scope_types: dict[str, tuple[str, ...]] = {
            name: tuple(types) for name, types in (scope_types or {}).items() if types}
        self.enforce_scope = enforce_scope
        self._reload_interval = reload_interval
        self._clock = clock
        self._rules: dict[str, Check] = dict(self._defaults)
        self._have_good_file = False  # a version of the file was usable
        self._file_sig: _FileSig = None
        self._next_check = 0.0
        self.load_rules(force=True)

    @property
    def rules(self) -> Mapping[str, Check]:
        """The effective parsed rules (read-only)."""
        return MappingProxyType(self._rules)

    def load_rules(self, force: bool = False) -> None:
        """Re-read the override file if it changed (or when ``force``).

        Without ``force`` the file is stat'ed at most once per interval.
        """
        path = self._override_file
        if path is None:
            return
        now = self._clock()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._reload_interval
        sig = _stat(path)
        if sig == self._file_sig and not force:
            return
        self._file_sig = sig
        overrides: dict[str, Check] = {}
        if sig is not None:
            try:
                overrides = _read_overrides(path)
            except Exception:
                LOG.exception("Ignoring unreadable policy file %s", path)
                if not self._have_good_file:
                    self._rules = {}  # fail closed until the file is fixed
                return
            LOG.info("Loaded policy overrides from %s", path)
        self._have_good_file = True
        self._rules = {**self._defaults, **overrides}

    def enforce(self, rule_name: str, target: Mapping[str, Any],
                creds: Mapping[str, Any]) -> bool:
        """Return whether ``creds`` pass rule ``rule_name`` for ``target``.

        Unknown rules, malformed rules, evaluation errors and (with scope
        enforced) a token of a scope the rule does not allow all deny.
        """
        return self._check(rule_name, target, creds) is None

    def authorize(self, rule_name: str, target: Mapping[str, Any],
                  creds: Mapping[str, Any]) -> None:
        """Like :meth:`enforce` but raise :class:`PolicyNotAuthorized` (or
        its kind :class:`InvalidScope`)."""
        denial = self._check(rule_name, target, creds)
        if denial is not None:
            raise denial

    def check_scope(self, rule_name: str, creds: Mapping[str, Any]) -> InvalidScope | None:
        """The scope mismatch of a token for a rule, if any (None: fine, or
        the rule has no scope_types)."""
        types = self._scope_types.get(rule_name)
        if not types:
            return None
        scope = token_scope(creds)
        if scope in types:
            return None
        return InvalidScope(rule_name, types, scope)

    def _check(self, rule_name: str, target: Mapping[str, Any],
               creds: Mapping[str, Any]) -> PolicyNotAuthorized | None:
        """None when allowed, else the exception that says why not."""
        invalid = self.check_scope(rule_name, creds)
        if invalid is not None:
            if self.enforce_scope:
                return invalid
            LOG.warning("Policy %s failed scope check: %s", rule_name, invalid)
        return None if self._evaluate(rule_name, target, creds) \
            else PolicyNotAuthorized(rule_name)

    def _evaluate(self, rule_name: str, target: Mapping[str, Any],
                  creds: Mapping[str, Any]) -> bool:
        self.load_rules()
        rule = self._rules.get(rule_name)
        if rule is None:
            LOG.debug("Policy rule %r does not exist", rule_name)
            return False
        try:
            if creds.get("system_scope"):  # oslo.policy's legacy alias
                creds = {**creds, "system": creds["system_scope"]}
            ctx = Context(self._rules, frozenset({rule_name}))
            return bool(rule.evaluate(flatten_target(target), creds, ctx))
        except Exception:
            LOG.exception("Error evaluating policy rule %r", rule_name)
            return False


def _stat(path: Path) -> _FileSig:
    """Cheap change signature of ``path``; None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_overrides(path: Path) -> dict[str, Check]:
    """Parse the override file into checks; raise if it is malformed."""
    import yaml  # only with an override file: PyYAML stays out of memory otherwise
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of rule names to rules")
    return {str(name): parse_rule(rule) for name, rule in data.items()}
