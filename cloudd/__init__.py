"""cloudd: an OpenStack-compatible compute cloud in one asyncio process."""

__version__ = "0.1.0"
