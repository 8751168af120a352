"""A compiled yes/no check in front of jsonschema.

jsonschema walks a schema object by object (about 110 us for a small server
create); fastjsonschema turns the schema into Python code once (about 12 us).
Only its "valid" is trusted: a body it rejects is validated again by
jsonschema, which decides and words the error, so the compiled check may be
stricter than jsonschema but must never be looser. Where fastjsonschema's
semantics differ, this module makes them agree or gives up on the schema
(``compile_check`` returns None and jsonschema does all the work):

- formats: every format jsonschema checks runs jsonschema's own checker;
  fastjsonschema's built-in regexes for the others are turned off, as
  jsonschema ignores formats it does not know;
- ``pattern`` ends at ``\\Z`` where the schema says ``$`` (stricter), and
  ``uniqueItems`` counts 1 and true as equal (stricter). Stricter is harmless
  except under ``oneOf`` and ``not``, where a rejected branch can turn a
  failure into a success, so such schemas are left to jsonschema (unless
  the ``oneOf``'s branches each name their types and no two share one: then
  at most one branch can match anyway);
- ``enum`` values that are objects or arrays compare 1 and true as equal
  (looser): left to jsonschema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DRAFT4 = "http://json-schema.org/draft-04/schema#"
# Formats fastjsonschema checks by itself when it is not given a checker.
_OWN_FORMATS = ("date-time", "email", "hostname", "ipv4", "ipv6", "uri", "regex")
_STRICTER = ("pattern", "uniqueItems")
_FLIPPING = ("oneOf", "not")


def _types(branch: Any) -> set[str] | None:
    kinds = branch.get("type") if isinstance(branch, dict) else None
    if kinds is None:
        return None
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    return kinds | {"number"} if "integer" in kinds else kinds


def _disjoint(branches: Any) -> bool:
    """Whether no value can have the type of two of these schemas."""
    seen: set[str] = set()
    for branch in branches if isinstance(branches, list) else [None]:
        kinds = _types(branch)
        if kinds is None or kinds & seen:
            return False
        seen |= kinds
    return True


def _unsafe(node: Any, under_flip: bool = False) -> bool:
    """Whether the compiled check could accept what jsonschema rejects."""
    if isinstance(node, list):
        return any(_unsafe(item, under_flip) for item in node)
    if not isinstance(node, dict):
        return False
    if under_flip and any(key in node for key in _STRICTER):
        return True
    enum = node.get("enum")
    if isinstance(enum, list) and any(isinstance(v, (dict, list)) for v in enum):
        return True
    for key, value in node.items():
        if key == "enum":
            continue
        if key in ("properties", "patternProperties", "definitions"):
            if isinstance(value, dict) and any(_unsafe(v, under_flip)
                                               for v in value.values()):
                return True
        elif key == "oneOf" and _disjoint(value):
            if _unsafe(value, under_flip):
                return True
        elif _unsafe(value, under_flip or key in _FLIPPING):
            return True
    return False


def compile_check(schema: dict, format_checker,
                  draft: str = DRAFT4) -> Callable[[Any], bool] | None:
    """``check(instance) -> bool`` that never says True where jsonschema with
    ``format_checker`` would find an error; None if the schema cannot be
    checked that way (then use jsonschema alone)."""
    if _unsafe(schema):
        return None
    import fastjsonschema

    def conforms(name: str) -> Callable[[Any], bool]:
        return lambda value: format_checker.conforms(value, name)

    formats: dict[str, Any] = {name: (lambda value: True) for name in _OWN_FORMATS}
    formats.update({name: conforms(name) for name in format_checker.checkers})
    try:
        compiled = fastjsonschema.compile({**schema, "$schema": draft}, formats=formats,
                                          use_default=False)
    except fastjsonschema.JsonSchemaDefinitionException:
        return None

    def check(instance: Any) -> bool:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check
