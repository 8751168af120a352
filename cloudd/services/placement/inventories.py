"""Placement handlers: inventories (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def get_inventories(request):
    raise error(501, 'not implemented yet')


async def create_inventory(request):
    raise error(501, 'not implemented yet')


async def set_inventories(request):
    raise error(501, 'not implemented yet')


async def delete_inventories(request):
    raise error(501, 'not implemented yet')


async def get_inventory(request):
    raise error(501, 'not implemented yet')


async def update_inventory(request):
    raise error(501, 'not implemented yet')


async def delete_inventory(request):
    raise error(501, 'not implemented yet')

