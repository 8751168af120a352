"""The agent's periodic power-state sync covers lifecycle events it never got.

The libvirt driver on libvirt's ``test:///default`` (no daemon) delivers no
lifecycle events at all, so a guest stopped behind cloudd's back is only
noticed by the periodic sync: the instance goes to SHUTOFF (vm_state
stopped, power state SHUTDOWN), as Nova's _sync_power_states does.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib

import pytest

from cloudd.drivers.base import InstanceSpec, PowerState
from tests.compute.test_agent_hub import (  # noqa: F401 (fixtures)
    add_instance,
    backend,
    controller,
    instance,
    wait_for,
)

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                              "(make test installs cloudd[libvirt])")

from cloudd.drivers.libvirt.driver import LibvirtDriver

pytestmark = pytest.mark.asyncio


async def test_a_guest_stopped_behind_cloudds_back_shows_shutoff(controller, tmp_path):  # noqa: F811
    cloud = controller.cloud
    secret = await controller.add_host("node1")
    driver = LibvirtDriver("node1", uri="test:///default", virt_type="test",
                           instances_dir=tmp_path / "instances")
    await driver.connect()
    try:
        uuid = str(uuidlib.uuid4())
        await add_instance(cloud, uuid, "node1")                # ACTIVE, running
        await driver.spawn(InstanceSpec(uuid=uuid, name="vm", vcpus=1, memory_mb=128,
                                        root_gb=0))
        client = await controller.connected("node1", secret, driver, sync_interval=0.3)
        await asyncio.sleep(0.6)                                 # a sync or two: no change
        row = await instance(cloud, uuid)
        assert (row.vm_state, row.power_state) == ("active", PowerState.RUNNING)
        # What `virsh destroy` does, on a connection that reports no events.
        dom = await asyncio.to_thread(driver.conn.lookupByName, f"cloudd-{uuid}")
        await asyncio.to_thread(dom.destroy)
        assert client.driver._events.empty()                     # no event was seen

        async def stopped():
            row = await instance(cloud, uuid)
            return (row.vm_state, row.power_state) == ("stopped", PowerState.SHUTDOWN)
        await wait_for(stopped, timeout=10)
    finally:
        await controller.stop_agents()
        await driver.close()
