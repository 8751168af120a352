"""Schemas for /resource_classes."""

from cloudd.services.placement.schemas.common import CUSTOM_RC_PATTERN

# POST /resource_classes and PUT /resource_classes/{name} (1.2 - 1.6): the
# new name, always a custom one.  From 1.7 the PUT has no body and the name
# in the URL is checked against the same schema as {"name": <name>}.
POST_RC_V1_2 = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": CUSTOM_RC_PATTERN, "maxLength": 255},
    },
    "required": ["name"],
    "additionalProperties": False,
}
PUT_RC_V1_2 = POST_RC_V1_2
