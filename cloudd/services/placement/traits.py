"""Placement handlers: traits (placeholder: being written)."""

from cloudd.services.placement.errors import error


async def list_traits_for_resource_provider(request):
    raise error(501, 'not implemented yet')


async def update_traits_for_resource_provider(request):
    raise error(501, 'not implemented yet')


async def delete_traits_for_resource_provider(request):
    raise error(501, 'not implemented yet')


async def list_traits(request):
    raise error(501, 'not implemented yet')


async def get_trait(request):
    raise error(501, 'not implemented yet')


async def put_trait(request):
    raise error(501, 'not implemented yet')


async def delete_trait(request):
    raise error(501, 'not implemented yet')

