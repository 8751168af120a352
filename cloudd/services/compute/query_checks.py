"""Small input checks Nova's JSON schemas make on admin API queries and bodies."""

from __future__ import annotations

import uuid as uuidlib

from aiohttp import web

from cloudd.web.errors import ApiError

_TRUE = {"true", "1", "on", "yes", "t", "y"}
_FALSE = {"false", "0", "off", "no", "f", "n"}


def reject_unknown(request: web.Request, allowed: set[str]) -> None:
    """Nova's ``additionalProperties: False`` on a query (400 naming the extra one)."""
    extra = sorted(set(request.query) - allowed)
    if extra:
        raise ApiError(400, f"Invalid input for query parameters {extra[0]}. Value: "
                            f"{request.query[extra[0]]}. Additional properties are not "
                            f"allowed ('{extra[0]}' was unexpected)")


def single(request: web.Request, name: str) -> str | None:
    """A query parameter given at most once (Nova's single_param)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"Invalid input for query parameters {name}. Value: {values}. "
                            f"{values} is not of type 'string'")
    return values[0] if values else None


def as_bool(value, name: str) -> bool:
    """Nova's parameter_types.boolean / strutils.bool_from_string(strict=True)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ApiError(400, f"Invalid input for field/attribute {name}. Value: {value}. "
                        f"{value!r} is not one of the allowed boolean values")


def is_uuid(value: str) -> bool:
    try:
        uuidlib.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def as_int(value: str) -> int | None:
    """``value`` as an integer id, or None when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def printable(value: str, *, allow_colon: bool = True) -> bool:
    """Nova's name / az_name formats: printable, no leading or trailing space."""
    if not value or value != value.strip():
        return False
    if not allow_colon and ":" in value:
        return False
    return all(c.isprintable() or c == " " for c in value)
