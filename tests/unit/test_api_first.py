"""While API requests are in flight (and for a moment after), background
work starts fewer steps at once (cloudd/runtime/api_first.py), and it gets
all its slots back once requests stop."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cloudd.runtime import api_first
from cloudd.web import app as web_app
from cloudd.web.auth import public
from cloudd.web.errors import identity_style


@pytest.fixture(autouse=True)
def _known_grace(monkeypatch):
    monkeypatch.setattr(api_first, "GRACE_SECONDS", 0.5)
    monkeypatch.setattr(api_first, "_quiet_from", 0.0)


async def _start(slots: api_first.Slots, n: int) -> tuple[list[asyncio.Task], list[int]]:
    """``n`` tasks that each take a slot and hold it; which of them got one."""
    got: list[int] = []
    release = asyncio.Event()

    async def step(i: int) -> None:
        await slots.acquire()
        got.append(i)
        try:
            await release.wait()
        finally:
            slots.release()

    tasks = [asyncio.create_task(step(i)) for i in range(n)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(_set_later(release)))
    return tasks, got


async def _stop(tasks: list[asyncio.Task]) -> None:
    """Cancel the holders (their slots are released) and wait for them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _set_later(event: asyncio.Event) -> None:
    await asyncio.sleep(3600)
    event.set()


@pytest.mark.asyncio
async def test_no_request_in_flight_gives_every_slot():
    slots = api_first.Slots(idle=5, busy=2)
    tasks, got = await _start(slots, 7)
    assert got == [0, 1, 2, 3, 4]
    await _stop(tasks)
    assert slots.used == 0


@pytest.mark.asyncio
async def test_a_request_in_flight_holds_new_steps_to_busy_then_all_resume():
    slots = api_first.Slots(idle=5, busy=2)
    with api_first.request():
        assert api_first.in_flight() == 1
        tasks, got = await _start(slots, 7)
        await asyncio.sleep(0)
        assert got == [0, 1]                # the rest wait while the user does
    await asyncio.sleep(0)
    assert api_first.in_flight() == 0
    assert got == [0, 1]                    # a next request may be on its way
    await asyncio.sleep(0.25)
    with api_first.request():               # ... and it came: the grace starts again
        pass
    await asyncio.sleep(0.25)               # past the first grace, within the second
    assert got == [0, 1]
    await asyncio.sleep(0.35)
    assert got == [0, 1, 2, 3, 4]           # quiet for the grace: woken, FIFO
    await _stop(tasks)
    assert slots.used == 0


@pytest.mark.asyncio
async def test_steps_already_running_are_not_stopped_by_a_request():
    slots = api_first.Slots(idle=4, busy=1)
    tasks, got = await _start(slots, 4)
    with api_first.request():
        await asyncio.sleep(0)
        assert got == [0, 1, 2, 3] and slots.used == 4
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert not waiting.done()
    await _stop(tasks)
    await waiting                           # a freed slot reaches it
    assert slots.used == 1
    slots.release()


@pytest.mark.asyncio
async def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot():
    slots = api_first.Slots(idle=1, busy=1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    assert slots.used == 0
    await asyncio.wait_for(slots.acquire(), 1)
    # Handed the slot and cancelled before it ran: the slot is given back.
    late = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()                         # hands the slot to ``late``
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    assert slots.used == 0


def test_busy_must_leave_background_work_a_slot():
    with pytest.raises(ValueError):
        api_first.Slots(idle=4, busy=0)


@pytest.mark.asyncio
async def test_the_web_app_counts_service_api_requests_only():
    seen: dict[str, int] = {}

    @public
    async def service(request: web.Request) -> web.Response:
        seen["service"] = api_first.in_flight()
        return web.json_response({})

    @public
    async def root(request: web.Request) -> web.Response:
        seen["root"] = api_first.in_flight()
        return web.json_response({})

    spec = web_app.ServiceSpec("svc", identity_style, "{rule}", list)

    def spec_for(request: web.Request):
        if request.path.startswith("/svc"):
            return spec, "/svc"
        return web_app._ROOT_SPEC, ""

    cloud = SimpleNamespace(config=SimpleNamespace(
        server=SimpleNamespace(max_body_bytes=1 << 20, access_log=False)))
    app = web_app._application(cloud, spec_for)
    app.router.add_get("/svc/x", service)
    app.router.add_get("/agent/x", root)
    async with TestClient(TestServer(app)) as client:
        for path in ("/svc/x", "/agent/x"):
            async with client.get(path) as response:
                assert response.status == 200, await response.text()
    assert seen == {"service": 1, "root": 0}
    assert api_first.in_flight() == 0
