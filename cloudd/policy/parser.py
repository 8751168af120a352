"""Check objects and the parser for oslo.policy's rule language.

Same semantics as ``oslo_policy._parser``/``_checks``, except that evaluation
never raises: what makes oslo.policy raise (a bad ``%`` format, a ``rule:``
cycle, a kind that is not valid Python, ...) denies.  Checks are immutable.
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

LOG = logging.getLogger(__name__)

Target = Mapping[str, Any]
Creds = Mapping[str, Any]


class Context(NamedTuple):
    """What ``rule:`` references resolve against during one evaluation."""

    rules: Mapping[str, Check]
    active: frozenset[str] = frozenset()  # rules being evaluated (cycles)


class Check:
    """Base class of a node of a parsed rule tree."""

    __slots__ = ()

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        """Return whether ``creds`` may act on the (flattened) ``target``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"


class TrueCheck(Check):
    """Always passes: ``""`` and ``"@"``."""

    __slots__ = ()

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        return True

    def __str__(self) -> str:
        return "@"


class FalseCheck(Check):
    """Never passes: ``"!"`` and anything malformed."""

    __slots__ = ()

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        return False

    def __str__(self) -> str:
        return "!"


class NotCheck(Check):
    """Logical inverse of another check."""

    __slots__ = ("rule",)

    def __init__(self, rule: Check) -> None:
        self.rule = rule

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        return not self.rule.evaluate(target, creds, ctx)

    def __str__(self) -> str:
        return f"not {self.rule}"


class _Junction(Check):
    """Base of AndCheck and OrCheck: an operator over sub-checks."""

    __slots__ = ("rules",)
    op = ""

    def __init__(self, rules: Sequence[Check]) -> None:
        self.rules = tuple(rules)

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.rules)) + ")"


class AndCheck(_Junction):
    """Passes when every sub-check passes."""

    __slots__ = ()
    op = "and"

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        return all(r.evaluate(target, creds, ctx) for r in self.rules)


class OrCheck(_Junction):
    """Passes when any sub-check passes."""

    __slots__ = ()
    op = "or"

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        return any(r.evaluate(target, creds, ctx) for r in self.rules)


class KindCheck(Check):
    """Base of the ``kind:match`` leaves."""

    __slots__ = ("kind", "match")

    def __init__(self, kind: str, match: str) -> None:
        self.kind = kind
        self.match = match

    def _expand(self, target: Target) -> str | None:
        """Substitute ``%(key)s`` from ``target``; None if that fails."""
        try:
            return self.match % target
        except Exception:  # noqa: BLE001 - KeyError, or a bad format (oslo.policy raises)
            return None

    def __str__(self) -> str:
        return f"{self.kind}:{self.match}"


class RuleCheck(KindCheck):
    """``rule:NAME``: evaluate another named rule (unknown names deny)."""

    __slots__ = ()

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        rule = ctx.rules.get(self.match)
        if rule is None:
            return False
        if self.match in ctx.active:
            LOG.error("Policy rule %r refers to itself", self.match)
            return False
        inner = Context(ctx.rules, ctx.active | {self.match})
        return rule.evaluate(target, creds, inner)


class RoleCheck(KindCheck):
    """``role:NAME``: case-insensitive membership in ``creds['roles']``."""

    __slots__ = ()

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        match = self._expand(target)
        if match is None or "roles" not in creds:
            return False
        try:
            return match.lower() in [role.lower() for role in creds["roles"]]
        except (TypeError, AttributeError):
            return False


class GenericCheck(KindCheck):
    """``KIND:MATCH``: KIND is a Python literal or a dotted key into creds."""

    __slots__ = ("_literal", "_path")

    def __init__(self, kind: str, match: str) -> None:
        super().__init__(kind, match)
        self._literal: str | None = None
        self._path: tuple[str, ...] | None = None
        try:
            self._literal = str(ast.literal_eval(kind))
        except ValueError:  # not a literal: a path into creds
            self._path = tuple(kind.split("."))
        except Exception:  # noqa: BLE001 - e.g. SyntaxError: oslo.policy raises, we deny
            LOG.error("Cannot understand policy check kind %r", kind)

    def evaluate(self, target: Target, creds: Creds, ctx: Context) -> bool:
        match = self._expand(target)
        if match is None:
            return False
        if self._literal is not None:
            return match == self._literal
        return self._path is not None and _find(creds, self._path, match)


def _find(value: Any, path: tuple[str, ...], match: str) -> bool:
    """Whether ``value`` at ``path`` equals ``match``; lists match any item."""
    if not path:
        return match == str(value)
    try:
        value = value[path[0]]
    except (KeyError, TypeError, IndexError):
        return False
    if isinstance(value, list):
        return any(_find(item, path[1:], match) for item in value)
    return _find(value, path[1:], match)


def parse_check(text: str) -> Check:
    """Parse one leaf check such as ``role:admin``, ``@`` or ``!``."""
    if text in ("!", "@"):
        return FalseCheck() if text == "!" else TrueCheck()
    kind, sep, match = text.partition(":")
    if not sep or kind in ("http", "https"):  # no remote checks in cloudd
        LOG.error("Failed to understand policy check %r", text)
        return FalseCheck()
    if kind in ("rule", "role"):
        return (RuleCheck if kind == "rule" else RoleCheck)(kind, match)
    return GenericCheck(kind, match)


# Token kinds; EXPR_AND/EXPR_OR are partly reduced "a and b"/"a or b".
LP, RP, AND, OR, NOT, STR = "(", ")", "and", "or", "not", "str"
CHECK, EXPR_AND, EXPR_OR = "check", "and_expr", "or_expr"
Token = tuple[str, Any]


def tokenize(rule: str) -> list[Token]:
    """Split a rule into tokens (parens only split at a word's ends)."""
    tokens: list[Token] = []
    for word in rule.split():
        body = word.lstrip("(")
        tokens += [(LP, "(")] * (len(word) - len(body))
        core = body.rstrip(")")
        if core.lower() in (AND, OR, NOT):
            tokens.append((core.lower(), core))
        elif core and len(body) >= 2 and body[0] == body[-1] in "'\"":
            tokens.append((STR, body[1:-1]))  # never reduces: malformed
        elif core:
            tokens.append((CHECK, parse_check(core)))
        tokens += [(RP, ")")] * (len(body) - len(core))
    return tokens


def _reduce_once(stack: list[Token]) -> bool:
    """Apply one reduction to the top of ``stack``; False if none applies.

    oslo.policy's greedy shift-reduce grammar: "not" > "and" > "or".
    """
    top = [kind for kind, _ in stack[-3:]]
    new: Token | None = None
    if len(top) == 3:
        a, c = stack[-3][1], stack[-1][1]
        if top[0] == LP and top[1] in (CHECK, EXPR_AND, EXPR_OR) and top[2] == RP:
            new = (CHECK, stack[-2][1])
        elif top[1:] == [AND, CHECK] and top[0] == CHECK:
            new = (EXPR_AND, AndCheck([a, c]))
        elif top[1:] == [AND, CHECK] and top[0] == EXPR_AND:
            new = (EXPR_AND, AndCheck([*a.rules, c]))
        elif top[1:] == [AND, CHECK] and top[0] == EXPR_OR:
            *head, last = a.rules  # "x or y and c" is "x or (y and c)"
            tail = [*last.rules, c] if isinstance(last, AndCheck) else [last, c]
            new = (EXPR_OR, OrCheck([*head, AndCheck(tail)]))
        elif top[1:] == [OR, CHECK] and top[0] in (CHECK, EXPR_AND):
            new = (EXPR_OR, OrCheck([a, c]))
        elif top[1:] == [OR, CHECK] and top[0] == EXPR_OR:
            new = (EXPR_OR, OrCheck([*a.rules, c]))
    if new is not None:
        stack[-3:] = [new]
    elif top[-2:] == [NOT, CHECK]:
        stack[-2:] = [(CHECK, NotCheck(stack[-1][1]))]
    else:
        return False
    return True


@functools.lru_cache(maxsize=2048)
def parse_text_rule(rule: str) -> Check:
    """Parse a rule in the policy language; malformed rules never pass."""
    if not rule:
        return TrueCheck()
    stack: list[Token] = []
    for token in tokenize(rule):
        stack.append(token)
        while _reduce_once(stack):
            pass
    if len(stack) == 1 and stack[0][0] in (CHECK, EXPR_AND, EXPR_OR):
        return stack[0][1]
    LOG.error("Failed to understand policy rule %r", rule)
    return FalseCheck()


def parse_rule(rule: object) -> Check:
    """Parse a rule from defaults or a policy file: a string, or None (passes).

    oslo.policy's legacy list-of-lists syntax, or any other type, never passes.
    """
    if rule is None:
        return TrueCheck()
    if isinstance(rule, str):
        return parse_text_rule(rule)
    LOG.error("Policy rule %r is not a string", rule)
    return FalseCheck()
