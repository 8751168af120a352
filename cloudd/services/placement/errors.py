"""Placement's stable error codes (the ``code`` of each error in a response)."""

from __future__ import annotations

from cloudd.web.errors import ApiError

DEFAULT = "placement.undefined_code"
INVENTORY_INUSE = "placement.inventory.inuse"
CONCURRENT_UPDATE = "placement.concurrent_update"
DUPLICATE_NAME = "placement.duplicate_name"
PROVIDER_IN_USE = "placement.resource_provider.inuse"
PROVIDER_CANNOT_DELETE_PARENT = "placement.resource_provider.cannot_delete_parent"
RESOURCE_PROVIDER_NOT_FOUND = "placement.resource_provider.not_found"
ILLEGAL_DUPLICATE_QUERYPARAM = "placement.query.duplicate_key"
QUERYPARAM_BAD_VALUE = "placement.query.bad_value"
QUERYPARAM_MISSING_VALUE = "placement.query.missing_value"


def error(status: int, detail: str, code: str = DEFAULT) -> ApiError:
    """An error in Placement's format: {"errors": [{status, title, detail, code, ...}]}."""
    return ApiError(status, detail, code=code)
