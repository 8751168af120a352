"""Placement handlers: candidates (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def list_allocation_candidates(request):
    raise error(501, 'not implemented yet')

