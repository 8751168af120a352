"""Request schemas of the servers API (Nova's schemas/servers.py and friends,
as JSON Schema) and validation worded as Nova words it."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import re
import unicodedata
import uuid as uuidlib
from typing import Any

from cloudd.web import schema_fast
from cloudd.web.errors import ApiError
from cloudd.web.formats import LazyFormats

FORMATS = LazyFormats()


@FORMATS.checks("uuid")
def _uuid(value) -> bool:
    if not isinstance(value, str):
        return True
    return is_uuid_like(value)


def is_uuid_like(value) -> bool:
    """oslo.utils' is_uuid_like."""
    try:
        canon = str(uuidlib.UUID(str(value))).replace("-", "")
    except (TypeError, ValueError, AttributeError):
        return False
    plain = str(value).replace("urn:", "").replace("uuid:", "").strip("{}")
    return canon == plain.replace("-", "").lower()


@FORMATS.checks("base64")
def _base64(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _printable(value: str) -> bool:
    return all(unicodedata.category(c)[0] != "C" for c in value)


@FORMATS.checks("name")
def _name(value) -> bool:
    if not isinstance(value, str):
        return True
    return value == value.strip() and _printable(value)


@FORMATS.checks("name_with_spaces")
def _name_spaces(value) -> bool:
    return not isinstance(value, str) or (_printable(value) and value.strip() != "")


@FORMATS.checks("description")
def _description(value) -> bool:
    return not isinstance(value, str) or _printable(value.replace("\n", "")
                                                   .replace("\r", "").replace("\t", ""))


_TRUE = [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
         "y", "t"]
_FALSE = [False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no",
          "n", "f"]

NAME = {"type": "string", "minLength": 1, "maxLength": 255, "format": "name"}
DESCRIPTION = {"type": ["string", "null"], "minLength": 0, "maxLength": 255,
               "format": "description"}
BOOLEAN = {"type": ["boolean", "string"], "enum": _TRUE + _FALSE}
POSITIVE_INT = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1,
                "minLength": 1}
NON_NEGATIVE_INT = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0,
                    "minLength": 1}
IMAGE_ID = {"type": "string", "format": "uuid"}
IMAGE_ID_OR_EMPTY = {"oneOf": [IMAGE_ID, {"type": "string", "maxLength": 0}]}
FLAVOR_REF = {"type": ["string", "integer"], "minLength": 1}
ADMIN_PASSWORD = {"type": "string"}
METADATA = {"type": "object",
            "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string",
                                                               "maxLength": 255}},
            "additionalProperties": False}
IP_ADDRESS = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
ACCESS_IPV4 = {"type": "string", "format": "ipv4"}
ACCESS_IPV6 = {"type": "string", "format": "ipv6"}


def access_ip(value: str | None) -> str | None:
    """An accessIPv4/v6 as Nova stores it (netaddr's canonical text, so
    0000:...:babe:220.12.22.2 reads back as ::babe:dc0c:1602); "" is none."""
    return str(ipaddress.ip_address(value)) if value else None
DISK_CONFIG = {"type": "string", "enum": ["AUTO", "MANUAL"]}
TAG = {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}
HOSTNAME = {"type": "string", "minLength": 2, "maxLength": 63,
            "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$"}
FQDN = {"type": "string", "minLength": 2, "maxLength": 255,
        "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-._]*[a-zA-Z0-9]+$"}
TRUSTED_CERTS = {"type": ["array", "null"], "minItems": 1, "maxItems": 50,
                 "uniqueItems": True, "items": {"type": "string", "minLength": 1}}
PERSONALITY = {"type": "array", "items": {
    "type": "object",
    "properties": {"path": {"type": "string"},
                   "contents": {"type": "string", "format": "base64"}},
    "additionalProperties": False}}
MAX_TAGS = 50

_BDM = {
    "type": "object",
    "properties": {
        "virtual_name": {"type": "string", "maxLength": 255},
        "volume_id": {"type": "string", "format": "uuid"},
        "snapshot_id": IMAGE_ID,
        "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                        "minimum": 1, "maximum": 2147483647},
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": "^[a-zA-Z0-9._/-]*$"},
        "delete_on_termination": BOOLEAN,
        "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
    },
    "additionalProperties": False,
}
_BDM_V2 = copy.deepcopy(_BDM)
_BDM_V2["properties"].update({
    "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": {"type": "string", "minLength": 1, "maxLength": 255,
             "pattern": "^[a-zA-Z0-9._-]*$"},
    "image_id": IMAGE_ID,
    "destination_type": {"type": "string", "enum": ["local", "volume"]},
    "guest_format": {"type": "string", "maxLength": 255},
    "device_type": {"type": "string", "maxLength": 255},
    "disk_bus": {"type": "string", "maxLength": 255},
    "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
})

_UUID_OR_LIST = {"oneOf": [{"type": "string", "format": "uuid"},
                           {"type": "array", "items": {"type": "string", "format": "uuid"}}]}
HINTS = {
    "type": "object",
    "properties": {
        "group": _UUID_OR_LIST,
        "different_host": _UUID_OR_LIST,
        "same_host": {"type": ["string", "array"], "items": {"type": "string",
                                                             "format": "uuid"}},
        "query": {"type": ["string", "object"]},
        "target_cell": NAME,
        "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
        "build_near_host_ip": IP_ADDRESS,
        "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
    },
    "additionalProperties": True,
}

_CREATE = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": NAME, "imageRef": IMAGE_ID_OR_EMPTY, "flavorRef": FLAVOR_REF,
                "adminPass": ADMIN_PASSWORD, "metadata": METADATA,
                "networks": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"fixed_ip": IP_ADDRESS,
                                   "port": {"type": ["string", "null"], "format": "uuid"},
                                   "uuid": {"type": "string"}},
                    "additionalProperties": False}},
                "OS-DCF:diskConfig": DISK_CONFIG, "accessIPv4": ACCESS_IPV4,
                "accessIPv6": ACCESS_IPV6, "personality": PERSONALITY,
                "availability_zone": NAME,
                "block_device_mapping": {"type": "array", "items": _BDM},
                "block_device_mapping_v2": {"type": "array", "items": _BDM_V2},
                "config_drive": BOOLEAN, "key_name": NAME,
                "min_count": POSITIVE_INT, "max_count": POSITIVE_INT,
                "return_reservation_id": BOOLEAN,
                "security_groups": {"type": "array", "items": {
                    "type": "object", "properties": {"name": NAME},
                    "additionalProperties": False}},
                "user_data": {"type": "string", "format": "base64", "maxLength": 65535},
            },
            "required": ["name", "flavorRef"],
            "additionalProperties": False,
        },
        "os:scheduler_hints": HINTS,
        "OS-SCH-HNT:scheduler_hints": HINTS,
    },
    "required": ["server"],
    "additionalProperties": False,
}


def _networks_v237(tagged: bool) -> dict:
    props = {"fixed_ip": IP_ADDRESS,
             "port": {"type": ["string", "null"], "format": "uuid"},
             "uuid": {"type": "string", "format": "uuid"}}
    if tagged:
        props["tag"] = TAG
    return {"oneOf": [{"type": "array", "items": {"type": "object", "properties": props,
                                                  "additionalProperties": False}},
                      {"type": "string", "enum": ["none", "auto"]}]}


@functools.lru_cache(maxsize=256)
def create_schema(mv: tuple[int, int]) -> dict:
    schema = copy.deepcopy(_CREATE)
    props = schema["properties"]["server"]["properties"]
    if mv >= (2, 19):
        props["description"] = DESCRIPTION
    if mv in ((2, 32), (2, 33), (2, 34), (2, 35), (2, 36)):
        props["networks"]["items"]["properties"]["tag"] = TAG
        if mv == (2, 32):
            props["block_device_mapping_v2"]["items"]["properties"]["tag"] = TAG
    if mv >= (2, 37):
        schema["properties"]["server"]["required"].append("networks")
        props["networks"] = _networks_v237(mv >= (2, 42))
    if mv >= (2, 42):
        props["block_device_mapping_v2"]["items"]["properties"]["tag"] = TAG
    if mv >= (2, 52):
        props["tags"] = {"type": "array", "items": TAG, "maxItems": MAX_TAGS}
    if mv >= (2, 57):
        props.pop("personality")
    if mv >= (2, 63):
        props["trusted_image_certificates"] = TRUSTED_CERTS
    if mv >= (2, 67):
        props["block_device_mapping_v2"]["items"]["properties"]["volume_type"] = {
            "type": ["string", "null"], "minLength": 0, "maxLength": 255}
    if mv >= (2, 74):
        props["host"] = FQDN
        props["hypervisor_hostname"] = FQDN
    if mv >= (2, 90):
        props["hostname"] = FQDN if mv >= (2, 94) else HOSTNAME
    return schema


@functools.lru_cache(maxsize=256)
def update_schema(mv: tuple[int, int]) -> dict:
    props = {"name": NAME, "OS-DCF:diskConfig": DISK_CONFIG,
             "accessIPv4": ACCESS_IPV4, "accessIPv6": ACCESS_IPV6}
    if mv >= (2, 19):
        props["description"] = DESCRIPTION
    if mv >= (2, 90):
        props["hostname"] = FQDN if mv >= (2, 94) else HOSTNAME
    return {"type": "object",
            "properties": {"server": {"type": "object", "properties": props,
                                      "additionalProperties": False}},
            "required": ["server"], "additionalProperties": False}


@functools.lru_cache(maxsize=256)
def rebuild_schema(mv: tuple[int, int]) -> dict:
    props = {"name": NAME, "imageRef": IMAGE_ID, "adminPass": ADMIN_PASSWORD,
             "metadata": METADATA, "preserve_ephemeral": BOOLEAN,
             "OS-DCF:diskConfig": DISK_CONFIG, "accessIPv4": ACCESS_IPV4,
             "accessIPv6": ACCESS_IPV6, "personality": PERSONALITY}
    if mv >= (2, 19):
        props["description"] = DESCRIPTION
    if mv >= (2, 54):
        props["key_name"] = {"type": ["string", "null"], "minLength": 1,
                             "maxLength": 255, "format": "name"}
    if mv >= (2, 57):
        props.pop("personality")
        props["user_data"] = {"type": ["string", "null"], "format": "base64",
                              "maxLength": 65535}
    if mv >= (2, 63):
        props["trusted_image_certificates"] = TRUSTED_CERTS
    if mv >= (2, 90):
        props["hostname"] = FQDN if mv >= (2, 94) else HOSTNAME
    return {"type": "object",
            "properties": {"rebuild": {"type": "object", "properties": props,
                                       "required": ["imageRef"],
                                       "additionalProperties": False}},
            "required": ["rebuild"], "additionalProperties": False}


def action_schema(name: str, props: dict, required: list | None = None,
                  nullable: bool = False) -> dict:
    inner = {"type": ["object", "null"] if nullable else "object",
             "properties": props, "additionalProperties": False}
    if required:
        inner["required"] = required
    return {"type": "object", "properties": {name: inner}, "required": [name],
            "additionalProperties": False}


RESIZE = action_schema("resize", {"flavorRef": FLAVOR_REF,
                                  "OS-DCF:diskConfig": DISK_CONFIG}, ["flavorRef"])
REBOOT = action_schema("reboot", {"type": {"type": "string", "enum": [
    "HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}}, ["type"])
CREATE_IMAGE = action_schema("createImage", {"name": NAME, "metadata": METADATA},
                             ["name"])
CREATE_BACKUP = action_schema("createBackup", {
    "name": NAME, "metadata": METADATA, "backup_type": {"type": "string"},
    "rotation": {"oneOf": [{"type": "integer", "minimum": 0},
                           {"type": "string", "pattern": "^[0-9]+$"}]}},
    ["name", "backup_type", "rotation"])
CONSOLE_OUTPUT = action_schema("os-getConsoleOutput", {"length": {
    "oneOf": [{"type": "string", "pattern": "^-?[0-9]+$"},
              {"type": ["integer", "null"], "minimum": -1}]}}, nullable=True)
LOCK = action_schema("lock", {}, nullable=True)
LOCK_V273 = action_schema("lock", {"locked_reason": {"type": "string", "minLength": 1,
                                                     "maxLength": 255}}, nullable=True)
NULL_ACTION = {"type": ["object", "null"]}

METADATA_BODY = {"type": "object", "properties": {"metadata": METADATA},
                 "required": ["metadata"], "additionalProperties": False}
META_ITEM_BODY = {"type": "object",
                  "properties": {"meta": {
                      "type": "object",
                      "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {
                          "type": "string", "maxLength": 255}},
                      "additionalProperties": False, "minProperties": 1,
                      "maxProperties": 1}},
                  "required": ["meta"], "additionalProperties": False}
TAGS_BODY = {"type": "object",
             "properties": {"tags": {"type": "array", "items": TAG,
                                     "maxItems": MAX_TAGS}},
             "required": ["tags"], "additionalProperties": False}


_VALIDATORS: dict[int, tuple[dict, Any, Any]] = {}
_NOT_YET = object()


def _validator(schema: dict):
    """One Draft4Validator per schema object, with its compiled yes/no check
    (cloudd/web/schema_fast.py; None if it has none). The schemas are module
    constants or memoised per microversion; the entry keeps its schema alive.
    The check is compiled (a few ms, 35 for a server create) on the schema's
    second use, so a schema built for one request never pays for it."""
    found = _VALIDATORS.get(id(schema))
    if found is not None and found[0] is schema:
        fast = found[2]
        if fast is _NOT_YET:
            fast = schema_fast.compile_check(schema, FORMATS.get())
            _VALIDATORS[id(schema)] = (schema, found[1], fast)
        return found[1], fast
    if len(_VALIDATORS) >= 1024:
        _VALIDATORS.clear()
    import jsonschema

    validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS.get())
    _VALIDATORS[id(schema)] = (schema, validator, _NOT_YET)
    return validator, None


def validate(body, schema: dict) -> None:
    """Nova's jsonschema validation: 400 "Invalid input for field/attribute
    X. Value: V. reason" (the innermost path element, as Nova reports it).
    A body the compiled check passes is valid; any other is jsonschema's."""
    validator, fast = _validator(schema)
    if fast is not None and fast(body):
        return
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(body))
    if error is None:
        return
    if error.path:
        raise ApiError(400, f"Invalid input for field/attribute {error.path[-1]}. "
                            f"Value: {error.instance}. {error.message}")
    raise ApiError(400, error.message)


_TRUE_WORDS = {str(v).lower() for v in _TRUE}


def as_bool(value) -> bool:
    """A schema-checked boolean (true, "yes", "1", ...) as a bool."""
    return value is True or (isinstance(value, str) and value.lower() in _TRUE_WORDS)


def bool_from_string(value, default: bool = False, strict: bool = False) -> bool:
    """oslo's strutils.bool_from_string."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in {str(v).lower() for v in _FALSE}:
        return False
    if strict:
        raise ApiError(400, f"Unrecognized value '{value}', acceptable values are: "
                            "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', "
                            "'true', 'y', 'yes'")
    return default


TAG_RE = re.compile(r"^[^,/]*$")
