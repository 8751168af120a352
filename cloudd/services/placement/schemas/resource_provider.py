"""Schemas for /resource_providers, per microversion."""

_NAME = {"type": "string", "maxLength": 200}
_UUID = {"type": "string", "format": "uuid"}
_PARENT = {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}


def _body(*, uuid: bool, parent: bool) -> dict:
    props: dict = {"name": _NAME}
    if uuid:
        props["uuid"] = _UUID
    if parent:
        props["parent_provider_uuid"] = _PARENT
    return {"type": "object", "properties": props, "required": ["name"],
            "additionalProperties": False}


POST_RP_V1_0 = _body(uuid=True, parent=False)
PUT_RP_V1_0 = _body(uuid=False, parent=False)
# 1.14: nested providers.
POST_RP_V1_14 = _body(uuid=True, parent=True)
PUT_RP_V1_14 = _body(uuid=False, parent=True)


def post_schema(version: tuple[int, int]) -> dict:
    return POST_RP_V1_14 if version >= (1, 14) else POST_RP_V1_0


def put_schema(version: tuple[int, int]) -> dict:
    return PUT_RP_V1_14 if version >= (1, 14) else PUT_RP_V1_0


# GET /resource_providers query strings: which parameters each version knows.
_QUERY_PARAMS = [
    ((1, 0), {"name": {"type": "string"}, "uuid": _UUID}),
    ((1, 3), {"member_of": {"type": "string"}}),
    ((1, 4), {"resources": {"type": "string"}}),
    ((1, 14), {"in_tree": _UUID}),
    ((1, 18), {"required": {"type": "string"}}),
]


def list_query_schema(version: tuple[int, int]) -> dict:
    props: dict = {}
    for since, params in _QUERY_PARAMS:
        if version >= since:
            props.update(params)
    return {"type": "object", "properties": props, "additionalProperties": False}
