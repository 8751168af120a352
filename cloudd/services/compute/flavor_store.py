"""(to be written) Flavor SQL and the seed flavors."""


async def seed(db) -> None:
    return None
