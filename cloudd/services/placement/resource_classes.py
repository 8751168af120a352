"""Placement handlers: resource_classes (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def list_resource_classes(request):
    raise error(501, 'not implemented yet')


async def create_resource_class(request):
    raise error(501, 'not implemented yet')


async def get_resource_class(request):
    raise error(501, 'not implemented yet')


async def update_resource_class(request):
    raise error(501, 'not implemented yet')


async def delete_resource_class(request):
    raise error(501, 'not implemented yet')

