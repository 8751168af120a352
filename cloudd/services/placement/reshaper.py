"""Placement handlers: reshaper (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def reshape(request):
    raise error(501, 'not implemented yet')

