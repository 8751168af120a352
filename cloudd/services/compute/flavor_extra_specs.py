"""Flavor extra specs: /flavors/{id}/os-extra_specs[/{key}] (Nova's
flavors_extraspecs.py).

Keys must match Nova's schema pattern and values be strings or numbers of at
most 255 characters. From 2.86 keys in a namespace Nova knows (hw:, os:,
resources*:, trait*:, quota:, ...) are validated against Nova's registry of
validators (flavor_extra_spec_rules); standard resource classes and traits
are accepted by shape, not against os-resource-classes / os-traits.
"""

from __future__ import annotations

import re

from aiohttp import web
from sqlalchemy import delete

from cloudd.db import tables as t
from cloudd.services.compute import common, flavor_store, nova_schema
from cloudd.services.compute.flavor_extra_spec_rules import NAMESPACES, VALIDATORS
from cloudd.services.compute.policies import ADMIN, PROJECT_READER_OR_ADMIN
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-flavor-extra-specs:%s"
_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
_METADATA = {"type": "object",
             "patternProperties": {_KEY: {"type": ["string", "number"], "maxLength": 255}},
             "additionalProperties": False}
CREATE = {"type": "object", "properties": {"extra_specs": _METADATA},
          "required": ["extra_specs"], "additionalProperties": False}
UPDATE = dict(_METADATA, minProperties=1, maxProperties=1)
_TRUE_FALSE = ("1", "t", "true", "on", "y", "yes", "0", "f", "false", "off", "n", "no")


def validate_spec(name: str, value: str) -> None:
    """Nova's 2.86+ validators.validate: 400 for a bad value or an unknown key
    in a known namespace."""
    for name_regex, rule in VALIDATORS:
        if re.fullmatch(name_regex, name):
            _check_value(value, rule)
            return
    if ":" not in name:
        return
    prefix = name.split(":", 1)[0]
    if any(re.fullmatch(ns, prefix) for ns in NAMESPACES):
        raise ApiError(400, f"Validation failed; extra spec '{name}' does not appear to be "
                            "a valid extra spec.")


def _check_value(value: str, rule: dict) -> None:
    kind = rule["type"]
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            raise ApiError(400, f"Validation failed; '{value}' is not a valid integer "
                                "value.") from None
        if "max" in rule and rule["max"] < number:
            raise ApiError(400, f"Validation failed; '{value}' is greater than the max "
                                f"value of '{rule['max']}'.")
        if "min" in rule and rule["min"] > number:
            raise ApiError(400, f"Validation failed; '{value}' is less than the min value "
                                f"of '{rule['min']}'.")
    elif kind == "bool":
        if str(value).strip().lower() not in _TRUE_FALSE:
            raise ApiError(400, f"Validation failed; '{value}' is not a valid boolean-like "
                                "value.")
    elif "pattern" in rule:
        if not re.fullmatch(rule["pattern"], value):
            raise ApiError(400, f"Validation failed; '{value}' is not of the format "
                                f"'{rule['pattern']}'.")
    elif "enum" in rule and value not in rule["enum"]:
        values = ", ".join(str(x) for x in rule["enum"])
        raise ApiError(400, f"Validation failed; '{value}' is not one of: {values}.")


def _check_values(request: web.Request, specs: dict) -> dict[str, str]:
    out = {}
    for name, value in specs.items():
        text = value if isinstance(value, str) else str(value)
        if len(text) > 255:
            raise ApiError(400, "extra_specs value has more than 255 characters.")
        if isinstance(value, bool):
            raise ApiError(400, f"Invalid input for field/attribute {name}. Value: {value}. "
                                f"{value!r} is not of type 'string', 'number'")
        if common.at_least(request, 2, 86):
            validate_spec(name, text)
        out[name] = text
    return out


async def _flavor(request: web.Request, conn):
    ctx = common.context(request)
    flavor_id = request.match_info["flavor_id"]
    row = await flavor_store.get_visible(conn, flavor_id, ctx.project_id,
                                         ctx.can("context_is_admin"))
    if row is None:
        raise flavor_store.not_found(flavor_id)
    return row


def _reader(request: web.Request, rule: str) -> None:
    ctx = common.context(request)
    ctx.authorize(ROOT % rule, {"project_id": ctx.project_id})


async def _store(conn, flavor_id: str, specs: dict[str, str]) -> None:
    keys = list(specs)
    await conn.execute(delete(t.flavor_extra_spec).where(
        t.flavor_extra_spec.c.flavor_id == flavor_id,
        t.flavor_extra_spec.c.spec_key.in_(keys)))
    if keys:
        await conn.execute(t.flavor_extra_spec.insert(), [
            {"flavor_id": flavor_id, "spec_key": k, "spec_value": v}
            for k, v in specs.items()])


async def index(request: web.Request) -> web.Response:
    _reader(request, "index")
    async with common.cloud(request).db.read() as conn:
        row = await _flavor(request, conn)
        return web.json_response({"extra_specs": await flavor_store.extra_specs(conn, row.id)})


async def create(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "create", {})
    body = nova_schema.check(CREATE, await read_json(request))
    specs = _check_values(request, body["extra_specs"])
    async with common.cloud(request).db.write() as conn:
        row = await _flavor(request, conn)
        await _store(conn, row.id, specs)
    return web.json_response(body)


async def show(request: web.Request) -> web.Response:
    _reader(request, "show")
    key = request.match_info["key"]
    async with common.cloud(request).db.read() as conn:
        row = await _flavor(request, conn)
        specs = await flavor_store.extra_specs(conn, row.id)
    if key not in specs:
        raise ApiError(404, f"Flavor {row.id} has no extra specs with key {key}.")
    return web.json_response({key: specs[key]})


async def update_spec(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "update", {})
    body = nova_schema.check(UPDATE, await read_json(request))
    specs = _check_values(request, body)
    key = request.match_info["key"]
    if key not in body:
        raise ApiError(400, "Request body and URI mismatch")
    async with common.cloud(request).db.write() as conn:
        row = await _flavor(request, conn)
        await _store(conn, row.id, specs)
    return web.json_response(body)


async def delete_spec(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "delete", {})
    key = request.match_info["key"]
    async with common.cloud(request).db.write() as conn:
        row = await _flavor(request, conn)
        res = await conn.execute(delete(t.flavor_extra_spec).where(
            t.flavor_extra_spec.c.flavor_id == row.id, t.flavor_extra_spec.c.spec_key == key))
        if res.rowcount == 0:
            raise ApiError(404, f"Flavor {row.id} has no extra specs with key {key}.")
    return web.Response(status=200)


ROUTES = {
    "/flavors/{flavor_id}/os-extra_specs": {"GET": (index, None), "POST": (create, None)},
    "/flavors/{flavor_id}/os-extra_specs/{key}": {
        "GET": (show, None), "PUT": (update_spec, None), "DELETE": (delete_spec, None)},
}

POLICIES = {
    ROOT % "index": PROJECT_READER_OR_ADMIN,
    ROOT % "show": PROJECT_READER_OR_ADMIN,
    ROOT % "create": ADMIN,
    ROOT % "update": ADMIN,
    ROOT % "delete": ADMIN,
}
