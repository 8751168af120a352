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


async def test_resize_rebuild_and_config():
    from cloudd.config import FakeDriverConfig
    d = FakeDriver.from_config("h1", FakeDriverConfig(vcpus=3, memory_mb=2048, disk_gb=20,
                                                      fail_spawn=True))
    res = await d.host_resources()
    assert (res.vcpus, res.memory_mb, res.disk_gb) == (3, 2048, 20)
    with pytest.raises(DriverError):
        await d.spawn(spec())
    d.fail_spawn = False
    await d.spawn(spec())
    await d.power_off("u1")
    bigger = InstanceSpec(uuid="u1", name="vm", vcpus=4, memory_mb=4096, root_gb=10)
    await d.resize("u1", bigger)
    assert d.specs["u1"].vcpus == 4
    assert (await d.list_instances())[0].power_state == PowerState.RUNNING
    await d.rebuild(InstanceSpec(uuid="u1", name="vm", vcpus=4, memory_mb=4096, root_gb=10,
                                 image={"id": "img2"}))
    assert "rebuilt from image img2" in await d.console_output("u1")
    with pytest.raises(DriverError):
        await d.resize("missing", bigger)
    assert [c[0] for c in d.calls] == ["spawn", "spawn", "power_off", "resize", "rebuild",
                                       "resize"]


async def test_interfaces_are_kept_per_instance():
    vif1 = {"port_id": "p1", "mac": "fa:16:3e:00:00:01", "bridge": "cdbr-n1"}
    vif2 = {"port_id": "p2", "mac": "fa:16:3e:00:00:02", "bridge": "cdbr-n2"}
    d = FakeDriver("h1")
    s = spec()
    s.network_info = [vif1]
    await d.spawn(s)
    await d.attach_interface("u1", vif2)
    await d.attach_interface("u1", vif2)       # repeated: still one NIC for the port
    assert [v["port_id"] for v in d.vifs["u1"]] == ["p1", "p2"]
    assert "eth1: link up (fa:16:3e:00:00:02)" in await d.console_output("u1")
    await d.detach_interface("u1", "p1", vif1)
    await d.detach_interface("u1", "p1", vif1)  # already gone: fine
    assert d.vifs["u1"] == [vif2]
    d.fail_interface = True
    with pytest.raises(DriverError):
        await d.attach_interface("u1", vif1)
    assert d.vifs["u1"] == [vif2]
    with pytest.raises(DriverError):
        await FakeDriver("h1").attach_interface("missing", vif1)
    await d.destroy("u1")
    assert "u1" not in d.vifs
