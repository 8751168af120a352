"""Guests' consoles on the host: serial console ports and where consoles listen.

Blocking helpers (libvirt calls, socket binds): the driver runs them in a
thread. A serial console is a TCP port QEMU binds on ``[libvirt] vnc_listen``
(Nova's ``[serial_console] port_range``); VNC gets its port from libvirt
(autoport). ``listener`` reads either from a running domain's live XML.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def port_range(value: str) -> tuple[int, int] | None:
    """"10000:20000" -> (10000, 20000); None for "" (no TCP serial consoles)."""
    if not value:
        return None
    low, _, high = value.partition(":")
    lo, hi = int(low), int(high)
    if not 0 < lo <= hi < 65536:
        raise ValueError(f"serial_port_range {value!r} is not LOW:HIGH within 1..65535")
    return lo, hi


def serial_ports(xml: str) -> list[int]:
    """The TCP ports a domain's serial devices and consoles bind."""
    out = []
    root = ET.fromstring(xml)
    for dev in root.findall("./devices/serial[@type='tcp']") + \
            root.findall("./devices/console[@type='tcp']"):
        src = dev.find("source")
        if src is not None and src.get("mode") == "bind" and (src.get("service") or "").isdigit():
            out.append(int(src.get("service")))
    return out


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def choose_serial_port(conn, name: str, host: str, bounds: tuple[int, int],
                       reserved: set[int]) -> int | None:
    """The port of domain ``name``'s serial console if it is defined, else the
    first port of ``bounds`` that no defined domain uses, that is not
    ``reserved`` (chosen for a guest still starting) and that binds on ``host``."""
    used = set(reserved)
    for dom in conn.listAllDomains(0):
        try:
            ports = serial_ports(dom.XMLDesc(0))
        except Exception:  # noqa: BLE001 - a domain vanishing meanwhile
            ports = []
        if dom.name() == name and ports:
            return ports[0]
        used.update(ports)
    for port in range(bounds[0], bounds[1] + 1):
        if port not in used and _bindable(host, port):
            return port
    return None


def listener(xml: str, kind: str) -> dict | None:
    """{"host", "port"} of a running domain's ``kind`` console ("vnc" or
    "serial"), from its live XML; None when it has none."""
    root = ET.fromstring(xml)
    if kind == "vnc":
        g = root.find("./devices/graphics[@type='vnc']")
        if g is None:
            return None
        host = g.get("listen")
        if host is None:
            lst = g.find("listen[@type='address']")
            host = lst.get("address") if lst is not None else "127.0.0.1"
        port = g.get("port") or ""
    elif kind == "serial":
        src = root.find("./devices/serial[@type='tcp']/source[@mode='bind']")
        if src is None:
            return None
        host, port = src.get("host") or "", src.get("service") or ""
    else:
        return None
    if not port.lstrip("-").isdigit() or int(port) <= 0:
        return None                      # not listening (autoport before start)
    if host in _WILDCARDS:
        host = socket.getfqdn()          # any address: the controller asks by name
    return {"host": host, "port": int(port)}
