"""Schemas for /traits and /resource_providers/{uuid}/traits."""

from cloudd.services.placement.schemas.common import CUSTOM_TRAIT_PATTERN

TRAIT = {"type": "string", "minLength": 1, "maxLength": 255}
CUSTOM_TRAIT = {**TRAIT, "pattern": CUSTOM_TRAIT_PATTERN}

# PUT /resource_providers/{uuid}/traits (1.6)
SET_TRAITS_FOR_RP = {
    "type": "object",
    "properties": {
        "traits": {"type": "array", "items": TRAIT},
        "resource_provider_generation": {"type": "integer"},
    },
    "required": ["traits", "resource_provider_generation"],
    "additionalProperties": False,
}

# GET /traits query string (1.6)
LIST_TRAITS_QUERY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "associated": {"type": "string"},
    },
    "additionalProperties": False,
}
