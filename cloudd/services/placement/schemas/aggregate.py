"""Schemas for /resource_providers/{uuid}/aggregates."""

_LIST = {"type": "array", "items": {"type": "string", "format": "uuid"},
         "uniqueItems": True}

# 1.1 - 1.18: the body is the bare list of aggregate uuids.
PUT_AGGREGATES_V1_1 = _LIST

# 1.19: an object carrying the provider generation too.
PUT_AGGREGATES_V1_19 = {
    "type": "object",
    "properties": {
        "aggregates": _LIST,
        "resource_provider_generation": {"type": "integer"},
    },
    "required": ["aggregates", "resource_provider_generation"],
    "additionalProperties": False,
}
