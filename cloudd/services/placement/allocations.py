"""Placement handlers: allocations (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def list_for_resource_provider(request):
    raise error(501, 'not implemented yet')


async def set_allocations(request):
    raise error(501, 'not implemented yet')


async def list_for_consumer(request):
    raise error(501, 'not implemented yet')


async def set_allocations_for_consumer(request):
    raise error(501, 'not implemented yet')


async def delete_allocations(request):
    raise error(501, 'not implemented yet')

