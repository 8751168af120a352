"""Interface attach and detach in the libvirt driver (test:///default): the
vif is plugged on the host first, then its NIC hot-plugged into the running
guest and its definition (only the definition when the guest is off);
detach takes it out of both, then off the host. The host network's saved
vifs (what a restart reconciles) follow."""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET

import pytest
import pytest_asyncio

from cloudd.agent.network.host import HostNetworkError
from cloudd.drivers.base import DriverError, InstanceSpec

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                              "(make test installs cloudd[libvirt])")

from cloudd.drivers.libvirt.domain import Nic, nic_xml
from cloudd.drivers.libvirt.driver import LibvirtDriver

pytestmark = pytest.mark.asyncio


def vif(n: int) -> dict:
    return {"port_id": f"port{n}", "mac": f"fa:16:3e:00:00:0{n}", "network_id": f"net{n}",
            "bridge": f"cdbr-net{n}", "tap": f"tapport{n}", "mtu": 1450,
            "network_type": "local", "host_address": f"10.{n}.0.1/24", "subnets": [],
            "security_group_rules": []}


class HostNet:
    """Keeps each instance's vifs as HostNetwork does (its saved state)."""

    def __init__(self):
        self.instances: dict[str, list[dict]] = {}
        self.applied: dict = {}
        self.calls: list[tuple] = []
        self.fail = False

    async def plug(self, uuid, network_info):
        if self.fail:
            raise HostNetworkError("bridge cdbr-net9 cannot be made")
        self.calls.append(("plug", uuid, [v["port_id"] for v in network_info]))
        self.instances[uuid] = list(network_info)

    async def unplug(self, uuid):
        self.calls.append(("unplug", uuid))
        self.instances.pop(uuid, None)

    async def reconcile(self, instances=None):
        pass

    async def close(self):
        pass


@pytest_asyncio.fixture
async def driver(tmp_path):
    d = LibvirtDriver("host1", uri="test:///default", virt_type="test",
                      instances_dir=tmp_path / "instances")
    d.host_network = HostNet()
    await d.connect()
    yield d
    await d.close()


def spec(**kw) -> InstanceSpec:
    return InstanceSpec(**{"uuid": str(uuidlib.uuid4()), "name": "vm", "vcpus": 1,
                           "memory_mb": 128, "root_gb": 0, **kw})


async def macs(driver, uuid, *, live=True) -> list[str]:
    dom = await driver._domain(uuid)
    flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
    root = ET.fromstring(dom.XMLDesc(flags))
    return [i.find("mac").get("address") for i in root.findall("devices/interface")]


def test_nic_xml_is_the_domains_interface_element():
    xml = nic_xml(Nic("fa:16:3e:00:00:07", "cdbr-abc", tap="tapxyz", mtu=1400))
    el = ET.fromstring(xml)
    assert el.tag == "interface" and el.get("type") == "bridge"
    assert el.find("mac").get("address") == "fa:16:3e:00:00:07"
    assert el.find("source").get("bridge") == "cdbr-abc"
    assert el.find("target").get("dev") == "tapxyz"
    assert el.find("mtu").get("size") == "1400"


class Dom:
    """A domain as attach/detach see it: live and persistent NICs by MAC
    (libvirt's test driver has no device hot-plug)."""

    def __init__(self, macs=(), active=True):
        self.active, self.live, self.config = active, list(macs), list(macs)
        self.calls: list[tuple[str, str, int]] = []
        self.no_slot = False            # a live attach fails
        self.sticky = False             # the guest never releases a detached NIC

    def isActive(self):
        return int(self.active)

    def XMLDesc(self, flags):
        macs = self.config if flags & libvirt.VIR_DOMAIN_XML_INACTIVE else self.live
        nics = "".join(f"<interface type='bridge'><mac address='{m}'/></interface>"
                       for m in macs)
        return f"<domain><devices>{nics}</devices></domain>"

    def attachDeviceFlags(self, xml, flags):
        mac = ET.fromstring(xml).find("mac").get("address")
        self.calls.append(("attach", mac, flags))
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            if not self.active:
                raise libvirt.libvirtError("domain is not running")
            if self.no_slot:
                raise libvirt.libvirtError("no free PCI slot")
            self.live.append(mac)
        if flags & libvirt.VIR_DOMAIN_AFFECT_CONFIG:
            self.config.append(mac)

    def detachDeviceFlags(self, xml, flags):
        mac = ET.fromstring(xml).find("mac").get("address")
        self.calls.append(("detach", mac, flags))
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE and not self.sticky:
            self.live.remove(mac)
        if flags & libvirt.VIR_DOMAIN_AFFECT_CONFIG:
            self.config.remove(mac)


def with_dom(driver, dom: Dom, uuid="u1", vifs=()):
    async def lookup(wanted, missing_ok=False):
        if wanted == uuid:
            return dom
        return await real_lookup(wanted, missing_ok)
    real_lookup = driver._domain
    driver._domain = lookup
    driver.host_network.instances[uuid] = list(vifs)
    return dom


LIVE, CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG


async def test_attach_and_detach_on_a_running_guest(driver):
    dom = with_dom(driver, Dom([vif(1)["mac"]]), vifs=[vif(1)])
    await driver.attach_interface("u1", vif(2))
    await driver.attach_interface("u1", vif(2))         # a repeated command: no change
    mac = vif(2)["mac"]
    assert dom.calls == [("attach", mac, CONFIG), ("attach", mac, LIVE)]
    assert dom.live == dom.config == [vif(1)["mac"], mac]
    hn = driver.host_network
    assert hn.calls[0] == ("plug", "u1", ["port1", "port2"])   # the host first
    assert [v["port_id"] for v in hn.instances["u1"]] == ["port1", "port2"]
    dom.calls.clear()

    await driver.detach_interface("u1", "port2", vif(2))
    assert dom.calls == [("detach", mac, CONFIG), ("detach", mac, LIVE)]
    assert dom.live == dom.config == [vif(1)["mac"]]
    assert [v["port_id"] for v in hn.instances["u1"]] == ["port1"]
    await driver.detach_interface("u1", "port2", vif(2))     # already gone: fine
    await driver.detach_interface("no-such-guest", "port2", vif(2))


async def test_a_stopped_guest_gets_the_nic_in_its_definition_only(driver):
    dom = with_dom(driver, Dom(active=False))
    await driver.attach_interface("u1", vif(3))
    assert dom.calls == [("attach", vif(3)["mac"], CONFIG)]
    assert dom.config == [vif(3)["mac"]] and dom.live == []
    await driver.detach_interface("u1", "port3", {})         # the saved vif is used
    assert dom.config == [] and driver.host_network.instances["u1"] == []


async def test_a_failed_attach_leaves_guest_and_host_as_they_were(driver):
    dom = with_dom(driver, Dom([vif(1)["mac"]]), vifs=[vif(1)])
    dom.no_slot = True
    with pytest.raises(DriverError, match="no free PCI slot"):
        await driver.attach_interface("u1", vif(2))
    assert dom.live == dom.config == [vif(1)["mac"]]
    assert [v["port_id"] for v in driver.host_network.instances["u1"]] == ["port1"]
    dom.no_slot = False
    driver.host_network.fail = True
    with pytest.raises(DriverError, match="cannot plug the instance's networks"):
        await driver.attach_interface("u1", vif(2))
    assert dom.config == [vif(1)["mac"]]
    with pytest.raises(DriverError, match="has no domain"):
        await driver.attach_interface("no-such-guest", vif(2))


async def test_a_guest_that_keeps_the_nic_fails_the_detach(driver, monkeypatch):
    from cloudd.drivers.libvirt import driver as module
    monkeypatch.setattr(module, "DETACH_WAIT", 0.6)
    dom = with_dom(driver, Dom([vif(1)["mac"], vif(2)["mac"]]), vifs=[vif(1), vif(2)])
    dom.sticky = True
    with pytest.raises(DriverError, match="did not release interface port2"):
        await driver.detach_interface("u1", "port2", vif(2))
    # still plugged on the host: the port stays attached
    assert [v["port_id"] for v in driver.host_network.instances["u1"]] == ["port1", "port2"]
