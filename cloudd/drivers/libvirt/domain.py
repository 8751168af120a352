"""Domain XML for a guest, built by pure functions from plain data.

Nothing here touches libvirt or the disk: ``render(Domain(...))`` returns
the XML text, so golden files pin down exactly what a guest gets.

The serial console has a log file (as Nova does with virtlogd): the log
keeps what the guest printed for ``os-getConsoleOutput`` while the console
itself stays free for an interactive session, on a TCP port bound on the
host (``serial_host``/``serial_port``, Nova's serial_console) when one is
given, else a pty. VNC listens on ``vnc_listen`` with a port libvirt picks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NAMESPACE = "https://cloudd.dev/xmlns/libvirt/instance/1.0"
NAME_PREFIX = "cloudd-"


@dataclass(frozen=True)
class Disk:
    path: str
    target: str                 # vda, vdb, hdd...
    format: str = "qcow2"       # qcow2 or raw
    bus: str = "virtio"
    device: str = "disk"        # disk or cdrom
    cache: str = "none"
    read_only: bool = False


@dataclass(frozen=True)
class Nic:
    mac: str
    bridge: str
    tap: str | None = None
    model: str = "virtio"
    mtu: int | None = None


@dataclass(frozen=True)
class Domain:
    uuid: str
    display_name: str
    vcpus: int
    memory_mb: int
    virt_type: str = "kvm"                  # kvm or qemu (software emulation)
    arch: str = "x86_64"
    machine: str = "pc"
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    kernel: str | None = None               # direct kernel boot
    ramdisk: str | None = None
    cmdline: str | None = None
    console_log: str | None = None
    serial_host: str | None = None          # serial console on TCP (bind) ...
    serial_port: int | None = None          # ... else a pty
    vnc_listen: str | None = None           # None: no graphics
    flavor_name: str = ""
    project_id: str = ""
    user_id: str = ""
    extra_metadata: dict = field(default_factory=dict)


def domain_name(uuid: str) -> str:
    """The libvirt name of an instance's domain."""
    return NAME_PREFIX + uuid


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _metadata(root: ET.Element, d: Domain) -> None:
    meta = _sub(root, "metadata")
    inst = ET.SubElement(meta, f"{{{NAMESPACE}}}instance")
    _sub(inst, f"{{{NAMESPACE}}}name", d.display_name)
    _sub(inst, f"{{{NAMESPACE}}}flavor", d.flavor_name)
    _sub(inst, f"{{{NAMESPACE}}}owner", project=d.project_id, user=d.user_id)


def _os(root: ET.Element, d: Domain) -> None:
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=d.arch, machine=d.machine)
    if d.kernel:
        _sub(os_el, "kernel", d.kernel)
        if d.ramdisk:
            _sub(os_el, "initrd", d.ramdisk)
        if d.cmdline:
            _sub(os_el, "cmdline", d.cmdline)
    else:
        first = d.disks[0].device if d.disks else "disk"
        _sub(os_el, "boot", dev="cdrom" if first == "cdrom" else "hd")


def _cpu(root: ET.Element, d: Domain) -> None:
    if d.virt_type == "kvm":
        _sub(root, "cpu", mode="host-model")
    # Under software emulation QEMU's default model is the safe choice.


def _disk(devices: ET.Element, disk: Disk) -> None:
    el = _sub(devices, "disk", type="file", device=disk.device)
    _sub(el, "driver", name="qemu", type=disk.format, cache=disk.cache)
    _sub(el, "source", file=disk.path)
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.read_only or disk.device == "cdrom":
        _sub(el, "readonly")


def _nic(devices: ET.Element, nic: Nic) -> None:
    el = _sub(devices, "interface", type="bridge")
    _sub(el, "mac", address=nic.mac)
    _sub(el, "source", bridge=nic.bridge)
    if nic.tap:
        _sub(el, "target", dev=nic.tap)
    _sub(el, "model", type=nic.model)
    if nic.mtu:
        _sub(el, "mtu", size=str(nic.mtu))


def nic_xml(nic: Nic) -> str:
    """The ``<interface>`` of one NIC alone: what interface attach and detach
    hand to libvirt (the same element the domain XML has)."""
    holder = ET.Element("devices")
    _nic(holder, nic)
    el = holder[0]
    ET.indent(el, space="  ")
    return ET.tostring(el, encoding="unicode") + "\n"


def nic_of(vif: dict) -> Nic:
    """A vif (docs/network-design.md) as the guest's NIC."""
    return Nic(mac=vif["mac"], bridge=vif["bridge"], tap=vif.get("tap"), mtu=vif.get("mtu"))


def _consoles(devices: ET.Element, d: Domain) -> None:
    tcp = bool(d.serial_host and d.serial_port)

    def chardev(tag: str) -> ET.Element:
        el = _sub(devices, tag, type="tcp" if tcp else "pty")
        if tcp:
            _sub(el, "source", mode="bind", host=d.serial_host, service=str(d.serial_port))
            _sub(el, "protocol", type="raw")
        return el

    serial = chardev("serial")
    if d.console_log:
        _sub(serial, "log", file=d.console_log, append="off")
    _sub(serial, "target", port="0")
    console = chardev("console")
    _sub(console, "target", type="serial", port="0")


def render(d: Domain) -> str:
    """The domain XML of ``d``, indented, deterministic."""
    ET.register_namespace("cloudd", NAMESPACE)
    root = ET.Element("domain", type=d.virt_type)
    _sub(root, "name", domain_name(d.uuid))
    _sub(root, "uuid", d.uuid)
    _metadata(root, d)
    _sub(root, "memory", str(d.memory_mb), unit="MiB")
    _sub(root, "currentMemory", str(d.memory_mb), unit="MiB")
    _sub(root, "vcpu", str(d.vcpus), placement="static")
    _os(root, d)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _cpu(root, d)
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    for disk in d.disks:
        _disk(devices, disk)
    for nic in d.nics:
        _nic(devices, nic)
    _consoles(devices, d)
    if d.vnc_listen:
        _sub(devices, "graphics", type="vnc", autoport="yes", listen=d.vnc_listen)
    _sub(devices, "memballoon", model="virtio")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
