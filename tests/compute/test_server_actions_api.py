"""POST /servers/{id}/action: Nova's state guards, the task and instance
action each action writes, locks, and what a refused action leaves alone."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from cloudd.db import tables as t
from tests.compute.conftest import IMAGE_ALT, call
from tests.compute.test_servers_api import (
    ALICE,
    BOB,
    boot,
    hold_conductor,
    rows,
    set_state,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def api(api):
    return hold_conductor(api)


async def active(api, **extra):
    from cloudd.services.compute.tasks import utcnow
    uuid = await boot(api)
    values = {"vm_state": "active", "task_state": None, "power_state": 1, "host": "node1",
              "node": "node1", "launched_at": utcnow(), **extra}
    await set_state(api, uuid, **values)
    async with api.cloud.db.write() as conn:     # the build is over
        await conn.execute(t.task.update().where(t.task.c.instance_uuid == uuid)
                           .values(state="done"))
    api.woken.clear()
    return uuid


async def act(api, uuid, body, status, token=ALICE, version="2.1"):
    return await call(api, "POST", f"/v2.1/servers/{uuid}/action", body, token=token,
                      version=version, status=status)


async def open_task(api, uuid):
    open_ = [r for r in await rows(api, t.task, instance_uuid=uuid)
             if r.state in ("pending", "running", "waiting")]
    return open_[0] if open_ else None


@pytest.mark.parametrize("body,task_state,kind,action", [
    ({"reboot": {"type": "SOFT"}}, "rebooting", "reboot", "reboot"),
    ({"reboot": {"type": "HARD"}}, "rebooting_hard", "reboot", "reboot"),
    ({"os-stop": None}, "powering-off", "stop", "stop"),
    ({"pause": None}, "pausing", "pause", "pause"),
    ({"suspend": None}, "suspending", "suspend", "suspend"),
    ({"resize": {"flavorRef": "2"}}, "resize_prep", "resize", "resize"),
])
async def test_action_on_active_server(api, body, task_state, kind, action):
    uuid = await active(api)
    await act(api, uuid, body, 202)
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert inst.task_state == task_state and inst.vm_state == "active"
    task = await open_task(api, uuid)
    assert task.kind == kind and api.woken == [task.id]
    actions = {r.id: r.action for r in await rows(api, t.instance_action, instance_uuid=uuid)}
    assert actions[task.action_id] == action
    if kind == "reboot":
        assert json.loads(task.payload) == {"hard": body["reboot"]["type"] == "HARD"}
    if kind == "resize":
        assert json.loads(task.payload)["flavor"]["id"] == "2"
        assert json.loads(inst.new_flavor)["id"] == "2"
    # A second action while this one runs is a conflict and changes nothing.
    await act(api, uuid, {"pause": None}, 409)
    [again] = await rows(api, t.instance, uuid=uuid)
    assert again.task_state == task_state


@pytest.mark.parametrize("vm_state,body,message", [
    ("stopped", {"reboot": {"type": "SOFT"}}, "while it is in vm_state stopped"),
    ("active", {"os-start": None}, "while it is in vm_state active"),
    ("stopped", {"pause": None}, "while it is in vm_state stopped"),
    ("active", {"unpause": None}, "while it is in vm_state active"),
    ("active", {"resume": None}, "while it is in vm_state active"),
    ("active", {"confirmResize": None}, "while it is in vm_state active"),
    ("active", {"revertResize": None}, "while it is in vm_state active"),
    ("paused", {"resize": {"flavorRef": "2"}}, "while it is in vm_state paused"),
])
async def test_wrong_state_is_409_and_unchanged(api, vm_state, body, message):
    uuid = await active(api, vm_state=vm_state)
    _, err = await act(api, uuid, body, 409)
    name = next(iter(body)).replace("os-", "")
    assert err["conflictingRequest"]["message"] == (
        f"Cannot '{name}' instance {uuid} {message}")
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert (inst.vm_state, inst.task_state) == (vm_state, None)
    assert await open_task(api, uuid) is None and api.woken == []


async def test_building_server_refuses_actions(api):
    uuid = await boot(api)
    _, err = await act(api, uuid, {"reboot": {"type": "HARD"}}, 409)
    assert "vm_state building" in err["conflictingRequest"]["message"]
    _, err = await act(api, uuid, {"os-stop": None}, 409)     # no host yet
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is not ready"


async def test_hard_reboot_takes_over_a_soft_reboot(api):
    uuid = await active(api)
    await act(api, uuid, {"reboot": {"type": "SOFT"}}, 202)
    await act(api, uuid, {"reboot": {"type": "SOFT"}}, 409)
    await act(api, uuid, {"reboot": {"type": "HARD"}}, 202)
    tasks = await rows(api, t.task, instance_uuid=uuid)
    assert sorted(r.state for r in tasks if r.kind == "reboot") == ["cancelled", "pending"]
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert inst.task_state == "rebooting_hard"


async def test_resize_checks(api):
    uuid = await active(api)
    _, err = await act(api, uuid, {"resize": {"flavorRef": "1"}}, 400)
    assert err["badRequest"]["message"] == "When resizing, instances must change flavor!"
    await act(api, uuid, {"resize": {"flavorRef": "999"}}, 400)
    await act(api, uuid, {"resize": {}}, 400)
    assert await open_task(api, uuid) is None


async def test_resize_quota(make_api):
    api = hold_conductor(await make_api({"quota": {"cores": 2}}))
    uuid = await active(api)
    _, err = await act(api, uuid, {"resize": {"flavorRef": "4"}}, 403)   # 4 vcpus
    assert "Quota exceeded for cores" in err["forbidden"]["message"]


async def test_confirm_and_revert_resize(api):
    uuid = await active(api, vm_state="resized")
    await act(api, uuid, {"confirmResize": None}, 204)
    task = await open_task(api, uuid)
    assert task.kind == "confirm_resize"
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert inst.task_state is None
    uuid2 = await active(api, vm_state="resized")
    await act(api, uuid2, {"revertResize": None}, 202)
    [inst] = await rows(api, t.instance, uuid=uuid2)
    assert inst.task_state == "resize_reverting"
    assert (await open_task(api, uuid2)).kind == "revert_resize"


async def test_rebuild(api):
    uuid = await active(api)
    image = IMAGE_ALT
    resp, data = await act(api, uuid, {"rebuild": {"imageRef": image, "name": "new",
                                                   "metadata": {"m": "1"},
                                                   "adminPass": "pw"}}, 202,
                           version="2.57")
    server = data["server"]
    assert server["status"] == "REBUILD" and server["adminPass"] == "pw"
    assert server["image"]["id"] == image and server["name"] == "new"
    assert server["metadata"] == {"m": "1"} and "user_data" in server
    assert resp.headers["Location"].endswith(f"/servers/{uuid}")
    task = await open_task(api, uuid)
    assert task.kind == "rebuild" and json.loads(task.payload)["image_ref"] == image
    await act(api, uuid, {"rebuild": {"imageRef": "nope"}}, 400)


async def test_lock_unlock(api):
    uuid = await active(api)
    await act(api, uuid, {"lock": {"locked_reason": "maintenance"}}, 202, token="admin",
              version="2.73")
    _, shown = await call(api, "GET", f"/v2.1/servers/{uuid}", token=ALICE, version="2.73",
                          status=200)
    assert shown["server"]["locked"] is True
    assert shown["server"]["locked_reason"] == "maintenance"
    _, err = await act(api, uuid, {"reboot": {"type": "HARD"}}, 409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is locked"
    # Locked by an admin: the owner cannot unlock it.
    await act(api, uuid, {"unlock": None}, 403)
    await act(api, uuid, {"reboot": {"type": "HARD"}}, 202, token="admin")
    await act(api, uuid, {"unlock": None}, 202, token="admin")
    await act(api, uuid, {"lock": None}, 202)
    await act(api, uuid, {"unlock": None}, 202)
    names = [r.action for r in await rows(api, t.instance_action, instance_uuid=uuid)]
    assert names.count("lock") == 2 and names.count("unlock") == 2


async def test_console_output(api):
    uuid = await active(api)
    calls = []

    async def fake_call(host, op, args, timeout):
        calls.append((host, op, args))
        return {"output": "line1\x07\nline2\n"}

    api.cloud.compute.hub.call = fake_call
    _, data = await act(api, uuid, {"os-getConsoleOutput": {"length": 5}}, 200)
    assert data == {"output": "line1\nline2\n"}
    assert calls == [("node1", "console_output", {"uuid": uuid, "lines": 5})]

    from cloudd.services.compute.agent_hub import AgentUnavailable

    async def unavailable(host, op, args, timeout):
        raise AgentUnavailable("node1")

    api.cloud.compute.hub.call = unavailable
    _, err = await act(api, uuid, {"os-getConsoleOutput": {}}, 409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is not ready"


async def test_unknown_action_and_other_project(api):
    uuid = await active(api)
    _, err = await act(api, uuid, {"fly": None}, 400)
    assert err["badRequest"]["message"] == "There is no such action: fly"
    await act(api, uuid, {"reboot": {"type": "SOFT"}}, 404, token=BOB)
    await act(api, uuid, {"reboot": {"type": "SOFTISH"}}, 400)


async def test_force_delete(api):
    uuid = await active(api)
    await act(api, uuid, {"forceDelete": None}, 202)
    assert (await open_task(api, uuid)).kind == "delete"
