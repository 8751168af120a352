"""Placement handlers: aggregates (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def get_aggregates(request):
    raise error(501, 'not implemented yet')


async def set_aggregates(request):
    raise error(501, 'not implemented yet')

