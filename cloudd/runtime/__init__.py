"""In-process actor runtime: actors on asyncio queues, supervised with restarts."""

from .actor import Actor, ActorCrash, ActorStopped
from .supervisor import Supervisor

__all__ = ["Actor", "ActorCrash", "ActorStopped", "Supervisor"]
