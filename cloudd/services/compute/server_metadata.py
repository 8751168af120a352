"""(to be written)"""

ROUTES: dict = {}
POLICIES: dict[str, str] = {}
