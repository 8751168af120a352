"""Nova-style request validation: a JSON schema per body, failures worded as
nova/api/validation/validators.py words them (owned by the flavors/keypairs/
quotas engineer; any compute module may use it).

    body = nova_schema.check(SCHEMA, await read_json(request))

A failure is a 400 ``badRequest``: "Invalid input for field/attribute
<field>. Value: <value>. <reason>", or just the reason for the top level.
"""

from __future__ import annotations

from cloudd.web.errors import ApiError
from cloudd.web.formats import LazyFormats

FORMATS = LazyFormats()


@FORMATS.checks("name")
def _name(value: object) -> bool:
    """Printable characters, not starting or ending with whitespace."""
    if not isinstance(value, str):
        return True
    if value != value.strip():
        raise ValueError("printable characters. Can not start or end with whitespace.")
    if not value.isprintable():
        raise ValueError("printable characters. Can not start or end with whitespace.")
    return True


def check(schema: dict, body: object) -> object:
    """``body`` when it matches ``schema``, else ApiError(400)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS.get())
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return body
    path = list(error.path)
    if error.validator == "format" and error.cause is not None:
        reason = f"{error.instance!r} is not a '{error.validator_value}'"
    else:
        reason = error.message
    if path:
        raise ApiError(400, f"Invalid input for field/attribute {path[-1]}. "
                            f"Value: {error.instance}. {reason}")
    raise ApiError(400, reason)


BOOLEAN = {
    "type": ["boolean", "string"],
    "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
             False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"],
}

TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")


def as_bool(value: object) -> bool:
    """oslo's bool_from_string for values that passed BOOLEAN."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS


NAME = {"type": "string", "format": "name", "minLength": 1, "maxLength": 255}
