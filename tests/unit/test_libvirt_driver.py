"""The libvirt driver against libvirt's test:///default (no daemon), and its
disk helpers against a real qemu-img."""

from __future__ import annotations

import asyncio
import shutil
import uuid as uuidlib
from pathlib import Path

import pytest
import pytest_asyncio

from cloudd.drivers.base import DriverError, InstanceSpec, PowerState
from cloudd.drivers.libvirt import disks
from cloudd.drivers.libvirt.imagecache import ImageCache

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                              "(make test installs cloudd[libvirt])")

from cloudd.drivers.libvirt.driver import LibvirtDriver
from cloudd.drivers.libvirt.virt_type import detect_virt_type


def spec(**kw) -> InstanceSpec:
    return InstanceSpec(**{"uuid": str(uuidlib.uuid4()), "name": "vm", "vcpus": 1,
                           "memory_mb": 128, "root_gb": 0, **kw})


@pytest_asyncio.fixture
async def driver(tmp_path):
    # test:///default is private to each connection: every test starts clean.
    d = LibvirtDriver("host1", uri="test:///default", virt_type="test",
                      instances_dir=tmp_path / "instances")
    await d.connect()
    yield d
    await d.close()


async def states(d: LibvirtDriver) -> dict[str, PowerState]:
    return {i.uuid: i.power_state for i in await d.list_instances()}


@pytest.mark.asyncio
async def test_spawn_list_and_destroy_removes_everything(driver):
    s = spec()
    await driver.spawn(s)
    await driver.spawn(s)            # a repeated spawn (redelivery) is fine
    assert (await states(driver))[s.uuid] == PowerState.RUNNING
    assert (driver.instances_dir / s.uuid).is_dir()
    await driver.destroy(s.uuid)
    assert s.uuid not in await states(driver)
    assert not (driver.instances_dir / s.uuid).exists()
    await driver.destroy(s.uuid)     # already gone: still succeeds


@pytest.mark.asyncio
async def test_power_pause_suspend_cycle(driver):
    s = spec()
    await driver.spawn(s)
    await driver.power_off(s.uuid, timeout=5)
    assert (await states(driver))[s.uuid] == PowerState.SHUTDOWN
    await driver.power_on(s.uuid)
    assert (await states(driver))[s.uuid] == PowerState.RUNNING
    await driver.pause(s.uuid)
    assert (await states(driver))[s.uuid] == PowerState.PAUSED
    await driver.unpause(s.uuid)
    await driver.suspend(s.uuid)
    assert (await states(driver))[s.uuid] == PowerState.SHUTDOWN
    await driver.resume(s.uuid)
    assert (await states(driver))[s.uuid] == PowerState.RUNNING
    await driver.reboot(s.uuid, hard=True)
    await driver.reboot(s.uuid, hard=False)
    assert (await states(driver))[s.uuid] == PowerState.RUNNING


@pytest.mark.asyncio
async def test_operations_on_a_missing_guest_fail_clearly(driver):
    with pytest.raises(DriverError, match="has no domain"):
        await driver.power_on(str(uuidlib.uuid4()))


@pytest.mark.asyncio
async def test_console_output_tails_the_log(driver):
    s = spec()
    await driver.spawn(s)
    (driver.instances_dir / s.uuid / "console.log").write_text("one\ntwo\nthree\n")
    assert await driver.console_output(s.uuid, 2) == "two\nthree"
    assert await driver.console_output(s.uuid) == "one\ntwo\nthree\n"


@pytest.mark.asyncio
async def test_host_resources_and_virt_type(driver):
    res = await driver.host_resources()
    assert res.vcpus > 0 and res.memory_mb > 0 and res.hypervisor_type == "QEMU"
    assert await detect_virt_type("qemu") == "qemu"
    assert await detect_virt_type("kvm") == "kvm"


needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                    reason="qemu-img (Debian's qemu-utils) is not installed")


@needs_qemu_img
@pytest.mark.asyncio
async def test_image_cache_fetches_once_checks_and_overlays(tmp_path):
    fetched = []

    async def download(image_id: str, dest: Path) -> dict:
        fetched.append(image_id)
        await asyncio.sleep(0.01)
        dest.write_bytes(b"\0" * 1024 * 1024)
        return {"disk_format": "raw"}

    cache = ImageCache(tmp_path / "cache", download)
    (a, fmt), (b, _) = await asyncio.gather(cache.get("img1"), cache.get("img1"))
    assert a == b and fmt == "raw" and fetched == ["img1"]
    overlay = tmp_path / "disk"
    await disks.overlay(a, fmt, overlay, 1)
    info = await disks.info(overlay, "qcow2")
    assert info["virtual-size"] == 1024 ** 3
    assert info["backing-filename"] == str(a)
    await disks.grow(overlay, 2)
    assert (await disks.info(overlay, "qcow2"))["virtual-size"] == 2 * 1024 ** 3


@needs_qemu_img
@pytest.mark.asyncio
async def test_image_cache_refuses_a_qcow2_that_claims_raw(tmp_path):
    async def download(image_id: str, dest: Path) -> dict:
        await disks.run("qemu-img", "create", "-q", "-f", "qcow2", str(dest), "1M")
        return {"disk_format": "raw"}

    cache = ImageCache(tmp_path / "cache", download)
    with pytest.raises(disks.DiskError, match="claims raw"):
        await cache.get("sneaky")
    assert not any((tmp_path / "cache").iterdir())


@pytest.mark.asyncio
async def test_config_drive_is_attached_as_a_config_2_cdrom(driver):
    import base64

    from cloudd.agent.configdrive import read_iso

    meta = b'{"uuid": "x"}'
    s = spec(config_drive={"files": {
        "openstack/latest/meta_data.json": base64.b64encode(meta).decode()}})
    await driver.spawn(s)
    xml = (await driver._domain(s.uuid)).XMLDesc(0)
    drive = driver.instances_dir / s.uuid / "disk.config"
    assert f"<source file='{drive}'/>" in xml and "device='cdrom'" in xml
    label, files = read_iso(drive)
    assert label == "config-2"
    assert files["openstack/latest/meta_data.json"] == meta


@pytest.mark.asyncio
async def test_a_config_drive_that_is_not_base64_fails_the_spawn_clearly(driver):
    s = spec(config_drive={"files": {"openstack/latest/meta_data.json": "not base64!"}})
    with pytest.raises(DriverError, match="config drive"):
        await driver.spawn(s)


@pytest.mark.asyncio
async def test_guests_of_another_agent_on_the_same_libvirtd_are_not_listed(driver):
    mine, theirs = spec(), spec()
    await driver.spawn(mine)
    await driver.spawn(theirs)
    # a domain whose files live under another instances_dir (another cloud's
    # agent on this libvirtd): not this driver's, so never reported as an orphan
    shutil.rmtree(driver.instances_dir / theirs.uuid)
    assert set(await states(driver)) == {mine.uuid}
    assert f"cloudd-{theirs.uuid}" in [d.name() for d in driver.conn.listAllDomains(0)]
