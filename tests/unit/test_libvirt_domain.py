"""Domain XML of the libvirt driver, pinned by golden files.

Regenerate after an intended change with CLOUDD_REGEN_GOLDEN=1 and review
the diff: every line is what a guest gets.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cloudd.drivers.libvirt.domain import NAMESPACE, Disk, Domain, Nic, domain_name, render

GOLDEN = Path(__file__).parent / "golden" / "libvirt"
UUID = "6b6e3b4e-1f0c-4d8e-9a57-0c1a2b3c4d5e"

CASES = {
    # A kernel, ramdisk and root overlay under software emulation: the test guest.
    "direct_kernel_qemu": Domain(
        uuid=UUID, display_name="tiny", vcpus=1, memory_mb=256, virt_type="qemu",
        disks=(Disk(f"/var/lib/cloudd/instances/{UUID}/disk", "vda"),),
        kernel=f"/var/lib/cloudd/instances/{UUID}/kernel",
        ramdisk=f"/var/lib/cloudd/instances/{UUID}/ramdisk",
        cmdline="console=ttyS0 root=/dev/vda",
        console_log=f"/var/lib/cloudd/instances/{UUID}/console.log",
        flavor_name="m1.tiny", project_id="p1", user_id="u1"),
    # A whole-disk image under KVM with ephemeral, swap, a config drive, a NIC and VNC.
    "disk_boot_kvm": Domain(
        uuid=UUID, display_name="web-1", vcpus=2, memory_mb=4096, virt_type="kvm",
        disks=(Disk(f"/i/{UUID}/disk", "vda"), Disk(f"/i/{UUID}/disk.eph0", "vdb"),
               Disk(f"/i/{UUID}/disk.swap", "vdc"),
               Disk(f"/i/{UUID}/disk.config", "hdd", format="raw", bus="ide",
                    device="cdrom")),
        nics=(Nic("fa:16:3e:00:00:01", "cloudd-br-1", tap="cdtap0123abcd", mtu=1450),),
        console_log=f"/i/{UUID}/console.log", vnc_listen="127.0.0.1",
        serial_host="127.0.0.1", serial_port=10007,
        flavor_name="m1.medium", project_id="p1", user_id="u1"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_domain_xml_matches_golden(name):
    xml = render(CASES[name])
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("CLOUDD_REGEN_GOLDEN"):
        path.write_text(xml)
    assert xml == path.read_text()


def test_kernel_boot_has_no_boot_device_and_disk_boot_has_one():
    kernel = ET.fromstring(render(CASES["direct_kernel_qemu"]))
    assert kernel.find("os/kernel") is not None and kernel.find("os/boot") is None
    disk = ET.fromstring(render(CASES["disk_boot_kvm"]))
    assert disk.find("os/kernel") is None and disk.find("os/boot").get("dev") == "hd"


def test_software_emulation_asks_for_no_host_cpu():
    qemu = ET.fromstring(render(CASES["direct_kernel_qemu"]))
    assert qemu.get("type") == "qemu" and qemu.find("cpu") is None
    kvm = ET.fromstring(render(CASES["disk_boot_kvm"]))
    assert kvm.get("type") == "kvm" and kvm.find("cpu").get("mode") == "host-model"


def test_names_are_prefixed_and_text_is_escaped():
    d = Domain(uuid=UUID, display_name="<a & b>", vcpus=1, memory_mb=64)
    root = ET.fromstring(render(d))
    assert root.findtext("name") == domain_name(UUID) == f"cloudd-{UUID}"
    assert root.findtext(f"metadata/{{{NAMESPACE}}}instance/{{{NAMESPACE}}}name") == "<a & b>"
