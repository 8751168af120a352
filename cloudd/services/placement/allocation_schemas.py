"""JSON schemas of the allocation bodies, per microversion (as Placement's)."""

from __future__ import annotations

import copy

UUID_PATTERN = "^[0-9a-fA-F-]{36}$"
RC_PATTERN = "^[A-Z0-9_]+$"
CONSUMER_TYPE_PATTERN = "^[A-Z0-9_]+$"
GROUP_PATTERN_1_33 = r"[a-zA-Z0-9_-]{1,64}"

_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
_RESOURCES = {
    "type": "object",
    "minProperties": 1,
    "patternProperties": {RC_PATTERN: {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}

# PUT /allocations/{consumer_uuid}, 1.0 - 1.7: a list of provider + resources.
PUT_1_0 = {
    "type": "object",
    "properties": {
        "allocations": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "resource_provider": {
                        "type": "object",
                        "properties": {"uuid": {"type": "string", "format": "uuid"}},
                        "additionalProperties": False,
                        "required": ["uuid"],
                    },
                    "resources": _RESOURCES,
                },
                "required": ["resource_provider", "resources"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["allocations"],
    "additionalProperties": False,
}

# 1.8: project_id and user_id required.
PUT_1_8 = copy.deepcopy(PUT_1_0)
PUT_1_8["properties"]["project_id"] = _NAME
PUT_1_8["properties"]["user_id"] = _NAME
PUT_1_8["required"].extend(["project_id", "user_id"])

# 1.12: allocations keyed by provider uuid, as GET shows them.
PUT_1_12 = {
    "type": "object",
    "properties": {
        "allocations": {
            "type": "object",
            "minProperties": 1,
            "patternProperties": {
                UUID_PATTERN: {
                    "type": "object",
                    "properties": {"generation": {"type": "integer"},
                                   "resources": _RESOURCES},
                    "required": ["resources"],
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        "project_id": _NAME,
        "user_id": _NAME,
    },
    "additionalProperties": False,
    "required": ["allocations", "project_id", "user_id"],
}

# POST /allocations (1.13): many consumers; empty allocations delete.
DELETABLE = copy.deepcopy(PUT_1_12)
DELETABLE["properties"]["allocations"]["minProperties"] = 0
POST_1_13 = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "patternProperties": {UUID_PATTERN: DELETABLE},
}

_GENERATION = {"type": ["integer", "null"], "additionalProperties": False}

# 1.28: consumer_generation required (null for a new consumer).
PUT_1_28 = copy.deepcopy(DELETABLE)
PUT_1_28["properties"]["consumer_generation"] = _GENERATION
PUT_1_28["required"].append("consumer_generation")
POST_1_28 = copy.deepcopy(POST_1_13)
POST_1_28["patternProperties"] = {UUID_PATTERN: PUT_1_28}

# 1.34: optional mappings of request group suffix -> provider uuids.
MAPPINGS = {
    "type": "object",
    "minProperties": 1,
    "patternProperties": {
        GROUP_PATTERN_1_33: {"type": "array", "minItems": 1,
                             "items": {"type": "string", "format": "uuid"}},
    },
}
PUT_1_34 = copy.deepcopy(PUT_1_28)
PUT_1_34["properties"]["mappings"] = MAPPINGS
POST_1_34 = copy.deepcopy(POST_1_28)
POST_1_34["patternProperties"] = {UUID_PATTERN: PUT_1_34}

# 1.38: consumer_type required.
PUT_1_38 = copy.deepcopy(PUT_1_34)
PUT_1_38["properties"]["consumer_type"] = {
    "type": "string", "pattern": CONSUMER_TYPE_PATTERN, "minLength": 1, "maxLength": 255}
PUT_1_38["required"].append("consumer_type")
POST_1_38 = copy.deepcopy(POST_1_34)
POST_1_38["patternProperties"] = {UUID_PATTERN: PUT_1_38}


def put_schema(version: tuple[int, int]) -> dict:
    for since, schema in (((1, 38), PUT_1_38), ((1, 34), PUT_1_34), ((1, 28), PUT_1_28),
                          ((1, 12), PUT_1_12), ((1, 8), PUT_1_8)):
        if version >= since:
            return schema
    return PUT_1_0


def post_schema(version: tuple[int, int]) -> dict:
    for since, schema in (((1, 38), POST_1_38), ((1, 34), POST_1_34), ((1, 28), POST_1_28)):
        if version >= since:
            return schema
    return POST_1_13


def reshaper_allocations(version: tuple[int, int]) -> dict:
    """The reshaper's "allocations" value: POST /allocations' form, may be empty."""
    schema = copy.deepcopy(POST_1_38 if version >= (1, 38) else
                           POST_1_34 if version >= (1, 34) else POST_1_28)
    schema["minProperties"] = 0
    return schema
