"""Placement handlers: usages (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def list_usages(request):
    raise error(501, 'not implemented yet')


async def get_total_usages(request):
    raise error(501, 'not implemented yet')

