"""ComputeService: the compute side of one running cloudd.

Holds the in-process actors (conductor, agent hub) and the scheduler, and
gives API handlers one place to reach them: ``request.app["cloud"].compute``.
"""

from __future__ import annotations

from cloudd.services.compute.agent_hub import AgentHub
from cloudd.services.compute.conductor import Conductor
from cloudd.services.compute.scheduler import Scheduler
from cloudd.services.placement.service import PlacementService


class ComputeService:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.config = cloud.config
        self.db = cloud.db
        self.placement = PlacementService(cloud.db)
        self.scheduler = Scheduler(self)
        self.hub = AgentHub(self)
        self.conductor = Conductor(self)

    def actors(self) -> list:
        """The actors the cloud's supervisor runs for compute."""
        return [self.conductor, self.hub]

    def wake(self, task_id: str) -> None:
        """After the commit that wrote or advanced a task: let the conductor run it."""
        self.conductor.cast(task_id)
