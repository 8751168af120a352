"""Schemas for /resource_providers/{uuid}/inventories."""

from cloudd.services.placement.schemas.common import (
    MAX_INT,
    RC_PATTERN,
    SQL_SP_FLOAT_MAX,
)

_COUNT = {"type": "integer", "maximum": MAX_INT, "minimum": 1}

_FIELDS = {
    "resource_provider_generation": {"type": "integer"},
    "total": _COUNT,
    "reserved": {"type": "integer", "maximum": MAX_INT, "minimum": 0},
    "min_unit": _COUNT,
    "max_unit": _COUNT,
    "step_size": _COUNT,
    "allocation_ratio": {"type": "number", "maximum": SQL_SP_FLOAT_MAX},
}

# PUT /resource_providers/{uuid}/inventories/{rc}
BASE_INVENTORY = {
    "type": "object",
    "properties": _FIELDS,
    "required": ["total", "resource_provider_generation"],
    "additionalProperties": False,
}

# POST /resource_providers/{uuid}/inventories
POST_INVENTORY = {
    "type": "object",
    "properties": {**_FIELDS, "resource_class": {"type": "string", "pattern": RC_PATTERN}},
    "required": ["total", "resource_class"],
    "additionalProperties": False,
}

# PUT /resource_providers/{uuid}/inventories
PUT_INVENTORY_RECORD = {**BASE_INVENTORY, "required": ["total"]}
PUT_INVENTORIES = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "inventories": {
            "type": "object",
            "patternProperties": {RC_PATTERN: PUT_INVENTORY_RECORD},
        },
    },
    "required": ["resource_provider_generation", "inventories"],
    "additionalProperties": False,
}

# What an inventory record gets for the fields a client leaves out.
DEFAULTS = {"reserved": 0, "min_unit": 1, "max_unit": MAX_INT, "step_size": 1,
            "allocation_ratio": 1.0}
