"""Request bodies through pydantic models, failures as the API's own 400."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from cloudd.web.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: object) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        field = "/".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"Invalid input for field '{field}': {first['msg']}") from None


def body_part(body: dict, key: str) -> dict:
    """The object under ``key`` of a request body ({"project": {...}})."""
    part = body.get(key)
    if not isinstance(part, dict):
        raise ApiError(400, f"Invalid input for field '{key}': a JSON object is required.")
    return part


_FALSE_WORDS = ("0", "false", "no", "off")


def bool_filter(value: str) -> bool:
    """OpenStack's reading of ?enabled=: anything but a false word is true."""
    return value.strip().lower() not in _FALSE_WORDS


async def referenced(coro):
    """A row the request refers to: when it is missing that is the client's 400."""
    try:
        return await coro
    except ApiError as e:
        if e.status == 404:
            raise ApiError(400, e.message) from None
        raise
