"""The HTTP front: one aiohttp application with a sub-application per API."""
