"""Supervisor: starts actors, restarts crashed ones with backoff, stops them gracefully."""

from __future__ import annotations

import asyncio
import logging

from .actor import Actor

__all__ = ["Supervisor"]

log = logging.getLogger("cloudd.runtime")


class Supervisor:
    """Owns a set of actors, each running ``recover()`` then its loop in its own task.

    A crash (recover() raising, or an exception escaping the loop, e.g. ActorCrash)
    is logged and the actor restarted after a backoff of ``backoff_min`` doubling up
    to ``backoff_max``; the backoff resets after a run that lasted ``backoff_max``.
    Queued messages survive a restart (the inbox belongs to the actor).

    ``sync_cast=True`` (tests): ``await actor.cast(msg)`` waits for the handler.
    """

    def __init__(
        self,
        *,
        sync_cast: bool = False,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.sync_cast = sync_cast
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._actors: dict[str, Actor] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._started = False
        self._stopping = asyncio.Event()

    def add(self, actor: Actor) -> Actor:
        """Register ``actor`` (started at once if the supervisor already runs)."""
        if actor.name in self._actors:
            raise ValueError(f"duplicate actor name {actor.name!r}")
        if self._stopping.is_set():
            raise RuntimeError("supervisor is stopped")
        actor._sync_cast = self.sync_cast
        self._actors[actor.name] = actor
        self._ready[actor.name] = asyncio.Event()
        if self._started:
            self._spawn(actor)
        return actor

    def get(self, name: str) -> Actor:
        """The actor registered under ``name`` (KeyError if none)."""
        return self._actors[name]

    @property
    def actors(self) -> dict[str, Actor]:
        """Registered actors by name (read-only view intended)."""
        return dict(self._actors)

    async def start(self) -> None:
        """Start every registered actor. Does not wait for recover() (see quiesce)."""
        if self._started:
            return
        self._started = True
        for actor in self._actors.values():
            self._spawn(actor)

    async def quiesce(self) -> None:
        """Wait until every actor has recovered once and all inboxes are empty and
        idle (including messages cast while waiting). For deterministic tests."""
        while True:
            for name, actor in self._actors.items():
                await self._ready[name].wait()
                await actor._idle.wait()
            if all(a._pending == 0 for a in self._actors.values()):
                return

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: refuse new messages, let each actor drain its inbox within
        ``timeout`` seconds, then cancel what is left. Waiters get ActorStopped."""
        self._stopping.set()
        for actor in self._actors.values():
            actor._close()
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.warning("actor %s did not drain within %.1fs; cancelling",
                            task.get_name(), timeout)
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for actor in self._actors.values():
            actor._fail_pending()

    # -- internals -------------------------------------------------------------
    def _spawn(self, actor: Actor) -> None:
        self._tasks[actor.name] = asyncio.create_task(self._supervise(actor), name=actor.name)

    async def _supervise(self, actor: Actor) -> None:
        loop = asyncio.get_running_loop()
        delay = self.backoff_min
        restarts = 0
        while True:
            began = loop.time()
            phase = "recover"
            try:
                await actor.recover()
                self._ready[actor.name].set()
                phase = "loop"
                await actor._run()
                return  # reached the stop sentinel
            except Exception:
                if loop.time() - began >= self.backoff_max:
                    delay = self.backoff_min
                restarts += 1
                log.exception("actor %s crashed in %s; restart #%d in %.2fs",
                              actor.name, phase, restarts, delay)
            try:
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
                return  # no restart while stopping: stop() fails the leftovers
            except TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max)
