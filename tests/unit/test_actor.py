"""Unit tests for cloudd.runtime (actors + supervisor)."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any, ClassVar

import pytest

from cloudd.runtime import Actor, ActorCrash, ActorStopped, Supervisor

pytestmark = pytest.mark.asyncio

FAST = {"backoff_min": 0.01, "backoff_max": 0.05}


class Echo(Actor):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self.recovers = 0

    async def recover(self) -> None:
        self.recovers += 1

    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, BaseException):
            raise msg
        if isinstance(msg, tuple) and msg[0] == "sleep":
            await asyncio.sleep(msg[1])
        self.seen.append(msg)
        return ("ok", msg)


async def started(*actors: Actor, **kw: Any) -> Supervisor:
    sup = Supervisor(**{**FAST, **kw})
    for a in actors:
        sup.add(a)
    await sup.start()
    return sup


async def test_call_returns_result() -> None:
    sup = await started(Echo())
    assert await sup.get("echo").call(1) == ("ok", 1)
    await sup.stop(1)


async def test_call_propagates_exception_and_actor_keeps_serving() -> None:
    a = Echo()
    sup = await started(a)
    with pytest.raises(ValueError, match="boom"):
        await a.call(ValueError("boom"))
    assert await a.call(2) == ("ok", 2)
    assert a.recovers == 1  # no restart
    await sup.stop(1)


async def test_call_timeout() -> None:
    a = Echo()
    sup = await started(a)
    with pytest.raises(TimeoutError):
        await a.call(("sleep", 1), timeout=0.02)
    await sup.stop(0.05)


async def test_cast_processed_and_failed_cast_logged(caplog: pytest.LogCaptureFixture) -> None:
    a = Echo()
    sup = await started(a)
    a.cast(RuntimeError("bad cast"))  # returned future ignored on purpose
    a.cast("x")
    await sup.quiesce()
    assert a.seen == ["x"]
    assert a.recovers == 1
    rec = [r for r in caplog.records if r.name == "cloudd.runtime" and "echo" in r.getMessage()]
    assert rec and rec[0].exc_info is not None
    await sup.stop(1)


async def test_recover_crash_restarts_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()

    class Flaky(Echo):
        name = "flaky"
        times: ClassVar[list[float]] = []

        async def recover(self) -> None:
            self.times.append(loop.time())
            if len(self.times) < 4:
                raise OSError("db down")

    a = Flaky()
    sup = await started(a, backoff_min=0.02, backoff_max=1.0)
    assert await a.call("after", timeout=2) == ("ok", "after")
    gaps = [b - x for x, b in zip(a.times, a.times[1:])]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, [0.02, 0.04, 0.08]):
        assert gap >= expected * 0.9
    crashes = [r for r in caplog.records if "crashed in recover" in r.getMessage()]
    assert len(crashes) == 3
    await sup.stop(1)


async def test_loop_crash_restarts_and_keeps_inbox() -> None:
    a = Echo()
    sup = await started(a)
    with pytest.raises(ActorCrash):
        await a.call(ActorCrash("reset me"))
    a.cast("queued")  # accepted while the actor is restarting
    assert await a.call("later", timeout=1) == ("ok", "later")
    assert a.seen == ["queued", "later"]
    assert a.recovers == 2
    await sup.stop(1)


async def test_stop_drains_inbox() -> None:
    a = Echo()
    sup = await started(a)
    for i in range(5):
        a.cast(("sleep", 0.001))
    a.cast("last")
    await sup.stop(1)
    assert len(a.seen) == 6 and a.seen[-1] == "last"


async def test_stop_timeout_cancels_stuck_handler() -> None:
    a = Echo()
    sup = await started(a)
    stuck = asyncio.create_task(a.call(("sleep", 10)))
    queued = asyncio.create_task(a.call("never"))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await sup.stop(0.1)
    assert loop.time() - t0 < 0.3
    for t in (stuck, queued):
        with pytest.raises(ActorStopped):
            await t
    assert a.seen == []


async def test_cast_and_call_after_stop_raise() -> None:
    a = Echo()
    sup = await started(a)
    await sup.stop(1)
    assert issubclass(ActorStopped, RuntimeError)
    with pytest.raises(ActorStopped):
        a.cast("late")
    with pytest.raises(ActorStopped):
        await a.call("late")


async def test_sync_cast_makes_work_visible() -> None:
    class Relay(Actor):
        """Forwards to echo and back to itself (a cycle that must not deadlock)."""

        name = "relay"
        hops = 0

        async def handle(self, msg: Any) -> None:
            self.hops += 1
            await sup.get("echo").cast(msg)
            if msg == "bounce":
                await self.cast("again")  # self-cast: queued, not awaited

    a, r = Echo(), Relay()
    sup = await started(a, r, sync_cast=True)
    await a.cast("x")
    assert a.seen == ["x"]
    await r.cast("y")
    assert a.seen == ["x", "y"]
    await r.cast("bounce")
    assert a.seen == ["x", "y", "bounce"]
    await sup.quiesce()
    assert a.seen == ["x", "y", "bounce", "again"] and r.hops == 3
    # a failing handler does not raise through an awaited cast (same as async mode)
    await a.cast(ValueError("logged only"))
    await sup.stop(1)


async def test_async_cast_future_is_done_and_ignorable() -> None:
    a = Echo()
    sup = await started(a)
    fut = a.cast(ValueError("ignored"))
    assert fut.done()
    await sup.stop(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del fut
        gc.collect()


async def test_periodic_runs(caplog: pytest.LogCaptureFixture) -> None:
    class Ticker(Echo):
        name = "ticker"
        periodic_interval = 0.02
        ticks = 0

        async def periodic(self) -> None:
            self.ticks += 1
            if self.ticks == 1:
                raise RuntimeError("first tick fails, later ones still run")

    t = Ticker()
    sup = await started(t)
    await asyncio.sleep(0.15)
    assert await t.call("msg") == ("ok", "msg")
    assert t.ticks >= 3 and t.recovers == 1
    assert any("periodic failed" in r.getMessage() for r in caplog.records)
    await sup.stop(1)


async def test_duplicate_name_rejected() -> None:
    sup = Supervisor()
    sup.add(Echo())
    with pytest.raises(ValueError):
        sup.add(Echo())
    with pytest.raises(KeyError):
        sup.get("nope")
    logging.getLogger("cloudd.runtime").debug("ok")
