"""Actor base class: one inbox, one handler loop, messages processed one at a time.

A message is only a wake-up naming a database row; the database is the truth.
A cast whose handling fails is logged and dropped: ``recover()`` (run on start and
after every restart) and periodic reconcilers find the work again.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
from typing import Any

__all__ = ["Actor", "ActorCrash", "ActorStopped"]

log = logging.getLogger("cloudd.runtime")

# Names of the actors whose handlers are (transitively) blocked waiting on the current
# message. Used in sync_cast mode so that an awaited cast never waits on itself.
_waiting_chain: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "cloudd_runtime_waiting_chain", default=()
)

_STOP = object()  # inbox sentinel: drain up to here, then leave the loop


class ActorStopped(RuntimeError):
    """The actor is stopping or stopped: it accepts no new messages."""


class ActorCrash(Exception):
    """Raise from handle()/periodic() to crash the loop: the supervisor restarts the
    actor (with backoff) and runs recover() again. A call() caller also gets it."""


class _Envelope:
    __slots__ = ("chain", "fut", "is_call", "msg")

    def __init__(self, msg: Any, fut: asyncio.Future[Any] | None, is_call: bool) -> None:
        self.msg = msg
        self.fut = fut
        self.is_call = is_call
        self.chain = _waiting_chain.get()

    def settle(self, result: Any = None, exc: BaseException | None = None) -> None:
        """Complete the waiter, if any. A cast waiter only ever sees ActorStopped."""
        fut = self.fut
        if fut is None or fut.done():
            return
        if exc is not None and (self.is_call or isinstance(exc, ActorStopped)):
            fut.set_exception(exc)
            if not self.is_call:
                fut.exception()  # mark retrieved: an ignored cast future must not warn
        else:
            fut.set_result(result if self.is_call else None)


def _done_future() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class Actor(abc.ABC):
    """Base class. Subclasses set ``name`` and implement ``handle``.

    Optional: ``recover()`` to re-read pending work from the database, and
    ``periodic_interval`` + ``periodic()`` for reconcilers. The periodic callback
    runs inside the actor loop, so it never overlaps ``handle``.
    Subclasses defining ``__init__`` must call ``super().__init__()``.
    """

    name: str
    periodic_interval: float | None = None

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        if not getattr(self, "name", None):
            raise TypeError(f"{type(self).__name__} must set a non-empty 'name'")
        self._inbox: asyncio.Queue[_Envelope] = asyncio.Queue()
        self._closed = False
        self._sync_cast = False  # set by Supervisor(sync_cast=...)
        self._pending = 0  # messages enqueued and not finished (for Supervisor.quiesce)
        self._idle = asyncio.Event()
        self._idle.set()

    # -- overridable -----------------------------------------------------------
    async def recover(self) -> None:
        """Re-read pending work (on start and after every restart). Default: no-op."""

    @abc.abstractmethod
    async def handle(self, msg: Any) -> Any:
        """Process one message; the return value is the result of call()."""

    async def periodic(self) -> None:
        """Called every ``periodic_interval`` seconds when that is set."""

    # -- public API --------------------------------------------------------------
    def cast(self, msg: Any) -> asyncio.Future[None]:
        """Enqueue ``msg`` without waiting. Must be called on the running loop.

        The returned future may be ignored. Normally it is already done; with
        ``Supervisor(sync_cast=True)`` it completes once the handler has finished
        (result None even if handle failed; the failure is logged), so tests can
        ``await actor.cast(msg)``. An awaited cast to an actor that is itself
        waiting on this one (a cycle) does not wait, to avoid deadlock.
        Raises ActorStopped once the actor is stopping.
        """
        self._check_open()
        fut = _done_future()
        if self._sync_cast and self.name not in _waiting_chain.get():
            fut = asyncio.get_running_loop().create_future()
            self._put(_Envelope(msg, fut, is_call=False))
        else:
            self._put(_Envelope(msg, None, is_call=False))
        return fut

    async def call(self, msg: Any, timeout: float | None = None) -> Any:
        """Enqueue ``msg`` and return handle()'s result (its exception propagates).

        On timeout raises TimeoutError; a call not yet started by then is skipped.
        Raises ActorStopped if the actor is stopping or stops before answering.
        """
        self._check_open()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Envelope(msg, fut, is_call=True))
        async with asyncio.timeout(timeout):
            return await fut

    @property
    def stopped(self) -> bool:
        """True once the actor stopped accepting messages."""
        return self._closed

    # -- runtime internals (used by Supervisor) ----------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ActorStopped(f"actor {self.name!r} is stopped")

    def _put(self, env: _Envelope) -> None:
        self._pending += 1
        self._idle.clear()
        self._inbox.put_nowait(env)

    def _done_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()

    def _close(self) -> None:
        """Refuse new messages; the loop drains what is queued, then exits."""
        if not self._closed:
            self._closed = True
            self._put(_Envelope(_STOP, None, is_call=False))

    def _fail_pending(self) -> None:
        """Fail every message left in the inbox with ActorStopped."""
        while not self._inbox.empty():
            env = self._inbox.get_nowait()
            env.settle(exc=ActorStopped(f"actor {self.name!r} stopped"))
            self._done_one()

    async def _run(self) -> None:
        """The message loop. Returns at the stop sentinel; raises on a crash."""
        loop = asyncio.get_running_loop()
        interval = self.periodic_interval
        next_tick = loop.time() + interval if interval else None
        while True:
            if next_tick is not None and loop.time() >= next_tick:
                if not self._closed:
                    await self._guarded(self.periodic, "periodic")
                next_tick = loop.time() + interval  # type: ignore[operator]
                continue
            try:
                async with asyncio.timeout_at(next_tick):
                    env = await self._inbox.get()
            except TimeoutError:
                continue
            try:
                if env.msg is _STOP:
                    return
                await self._dispatch(env)
            except asyncio.CancelledError:
                env.settle(exc=ActorStopped(f"actor {self.name!r} stopped"))
                raise
            except BaseException as exc:
                env.settle(exc=exc)
                raise
            finally:
                self._done_one()

    async def _dispatch(self, env: _Envelope) -> None:
        if env.is_call and env.fut is not None and env.fut.done():
            return  # the caller gave up (timeout or cancelled) before we started
        token = _waiting_chain.set(env.chain + (self.name,))
        try:
            result = await self.handle(env.msg)
        except ActorCrash:
            raise
        except Exception as exc:
            if not env.is_call:
                log.exception("actor %s: cast %r failed; message dropped", self.name, env.msg)
            env.settle(exc=exc)
            return
        finally:
            _waiting_chain.reset(token)
        env.settle(result)

    async def _guarded(self, fn: Any, what: str) -> None:
        try:
            await fn()
        except ActorCrash:
            raise
        except Exception:
            log.exception("actor %s: %s failed", self.name, what)
