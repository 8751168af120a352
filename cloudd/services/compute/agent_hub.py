"""The agent hub: websocket endpoint for compute agents, outbox delivery. (stub)"""

from cloudd.runtime import Actor


class AgentHub(Actor):
    name = "agent-hub"

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    async def handle(self, msg):
        return None

    def notify(self, host: str) -> None:
        """Commands for ``host`` were committed: send them if it is connected."""
