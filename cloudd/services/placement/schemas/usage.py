"""Schemas for GET /usages query strings."""

from cloudd.services.placement.schemas.common import CONSUMER_TYPE_GET_PATTERN

_ID = {"type": "string", "minLength": 1, "maxLength": 255}

GET_USAGES_V1_9 = {
    "type": "object",
    "properties": {"project_id": _ID, "user_id": _ID},
    "required": ["project_id"],
    "additionalProperties": False,
}

# 1.38: consumer_type (a name, or "all" / "unknown").
GET_USAGES_V1_38 = {
    **GET_USAGES_V1_9,
    "properties": {
        **GET_USAGES_V1_9["properties"],
        "consumer_type": {"type": "string", "pattern": CONSUMER_TYPE_GET_PATTERN,
                          "minLength": 1, "maxLength": 255},
    },
}
