"""The libvirt driver's host network wiring: vifs become NICs on their bridges,
plugged before the domain is defined and unplugged after it is destroyed."""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio

from cloudd.agent.network.host import HostNetworkError
from cloudd.agent.network.runner import CommandError
from cloudd.config import Config
from cloudd.drivers.base import DriverError, InstanceSpec

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                              "(make test installs cloudd[libvirt])")

from cloudd.drivers.libvirt.driver import LibvirtDriver

pytestmark = pytest.mark.asyncio

VIF = {"port_id": "p1", "mac": "fa:16:3e:aa:bb:cc", "network_id": "n1",
       "bridge": "cdbr-n1", "tap": "tapp1", "mtu": 1450, "network_type": "local",
       "host_address": "10.253.0.1/24", "subnets": [], "security_group_rules": []}


class Recorder:
    def __init__(self, driver=None, fail=False):
        self.calls, self.driver, self.fail = [], driver, fail
        self.instances, self.applied = {}, {}

    async def plug(self, uuid, network_info):
        # the domain is not defined yet when the bridges are made
        if self.driver is not None:
            assert await self.driver._domain(uuid, missing_ok=True) is None
        if self.fail:
            raise HostNetworkError("no interface for physical network 'x'")
        self.calls.append(("plug", uuid, network_info))

    async def unplug(self, uuid):
        self.calls.append(("unplug", uuid))

    async def update(self, uuid, network_info):
        self.calls.append(("update", uuid, network_info))

    async def set_members(self, group_id, members):
        if self.fail:
            raise CommandError("nft: Error: No such file or directory")
        self.calls.append(("set_members", group_id, members))

    async def reconcile(self, instances=None):
        self.calls.append(("reconcile", instances))

    async def close(self):
        self.calls.append(("close",))


@pytest_asyncio.fixture
async def driver(tmp_path):
    d = LibvirtDriver("host1", uri="test:///default", virt_type="test",
                      instances_dir=tmp_path / "instances")
    d.host_network = Recorder(d)
    await d.connect()
    yield d
    await d.close()


def spec(**kw) -> InstanceSpec:
    return InstanceSpec(**{"uuid": str(uuidlib.uuid4()), "name": "vm", "vcpus": 1,
                           "memory_mb": 128, "root_gb": 0, **kw})


async def test_spawn_plugs_then_defines_nics_and_destroy_unplugs(driver):
    s = spec(network_info=[VIF])
    await driver.spawn(s)
    assert driver.host_network.calls == [("plug", s.uuid, [VIF])]
    dom = await driver._domain(s.uuid)
    iface = ET.fromstring(dom.XMLDesc(0)).find("devices/interface")
    assert iface.get("type") == "bridge"
    assert iface.find("mac").get("address") == "fa:16:3e:aa:bb:cc"
    assert iface.find("source").get("bridge") == "cdbr-n1"
    assert iface.find("model").get("type") == "virtio"
    await driver.destroy(s.uuid)
    assert driver.host_network.calls[-1] == ("unplug", s.uuid)


async def test_no_network_info_means_no_nic_and_no_plug(driver):
    s = spec()
    await driver.spawn(s)
    dom = await driver._domain(s.uuid)
    assert ET.fromstring(dom.XMLDesc(0)).find("devices/interface") is None
    assert driver.host_network.calls == []


async def test_update_network_goes_to_the_host_network(driver):
    await driver.update_network("u1", [VIF])
    assert driver.host_network.calls == [("update", "u1", [VIF])]


async def test_security_group_members_go_to_the_host_network(driver):
    members = {"version": 1, "IPv4": ["10.253.0.7/32"], "IPv6": []}
    await driver.update_security_group_members("g1", members)
    assert driver.host_network.calls == [("set_members", "g1", members)]
    driver.host_network.fail = True
    with pytest.raises(DriverError, match="cannot update security group g1's members"):
        await driver.update_security_group_members("g1", members)


async def test_a_plug_failure_fails_the_spawn_clearly(driver):
    driver.host_network.fail = True
    s = spec(network_info=[VIF])
    with pytest.raises(DriverError, match="cannot plug the instance's networks"):
        await driver.spawn(s)
    assert await driver._domain(s.uuid, missing_ok=True) is None


async def test_connect_reconciles_saved_guests_that_libvirt_still_has(tmp_path):
    d = LibvirtDriver("host1", uri="test:///default", virt_type="test",
                      instances_dir=tmp_path / "instances")
    rec = d.host_network = Recorder()
    rec.instances = {"gone": [VIF]}
    await d.connect()
    assert rec.calls == [("reconcile", {})]
    await d.close()
    assert rec.calls[-1] == ("close",)


async def test_from_config_builds_the_host_network(tmp_path):
    cfg = Config.model_validate({
        "server": {"data_dir": str(tmp_path)},
        "host_network": {"physical_interface_mappings": "physnet1:eth1, physnet2:eth2",
                         "metadata_port": 9775, "dnsmasq": "/opt/dnsmasq",
                         "nft_table": "cloudd_t1"}})
    d = LibvirtDriver.from_config("h1", cfg, controller="http://127.0.0.1:1", secret="s",
                                  state_dir=tmp_path / "agent")
    hn = d.host_network
    assert hn.mappings == {"physnet1": "eth1", "physnet2": "eth2"}
    assert hn.metadata_port == 9775 and hn.dnsmasq_binary == "/opt/dnsmasq"
    assert hn.dir == tmp_path / "agent" / "network"
    assert hn.proxy.port == 9775
    assert hn.tables == ("cloudd_t1", "cloudd_t1_nat")
    with pytest.raises(ValueError, match="physnet:interface"):
        Config.model_validate({"host_network": {"physical_interface_mappings": ["eth1"]}})
