"""The conductor: advances tasks (build, delete, actions) step by step. (stub)"""

from cloudd.runtime import Actor


class Conductor(Actor):
    name = "conductor"

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    async def handle(self, msg):
        return None
