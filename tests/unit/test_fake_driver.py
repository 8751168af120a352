"""The fake driver honours the driver contract and its failure knobs."""

import pytest

from cloudd.drivers.base import DriverError, InstanceSpec, PowerState
from cloudd.drivers.fake import FakeDriver

pytestmark = pytest.mark.asyncio


def spec(uuid="u1"):
    return InstanceSpec(uuid=uuid, name="vm", vcpus=1, memory_mb=512, root_gb=1)


async def test_lifecycle_and_events():
    d = FakeDriver("h1")
    await d.spawn(spec())
    await d.spawn(spec())                      # repeated spawn is a no-op
    assert [i.power_state for i in await d.list_instances()] == [PowerState.RUNNING]
    events = d.events()
    await d.power_off("u1")
    assert (await anext(events)).power_state == PowerState.SHUTDOWN
    await d.power_on("u1")
    assert (await anext(events)).power_state == PowerState.RUNNING
    await d.reboot("u1", hard=True)
    assert "rebooting (hard)" in await d.console_output("u1", lines=1)
    await d.destroy("u1")
    await d.destroy("u1")                      # already gone: still fine
    assert await d.list_instances() == []


async def test_failure_knobs():
    with pytest.raises(DriverError) as e:
        await FakeDriver("h1", fail_spawn=True).spawn(spec())
    assert not e.value.retryable
    with pytest.raises(DriverError) as e:
        await FakeDriver("h1", retryable_failure=True).spawn(spec())
    assert e.value.retryable
    with pytest.raises(DriverError):
        await FakeDriver("h1").power_on("missing")
