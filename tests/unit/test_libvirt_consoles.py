"""Where guests' consoles listen: serial console ports chosen on the host and
the VNC/serial listeners read back from a running domain's XML."""

from __future__ import annotations

import socket

import pytest

from cloudd.drivers.libvirt import consoles
from cloudd.drivers.libvirt.domain import Domain, render

UUID = "6b6e3b4e-1f0c-4d8e-9a57-0c1a2b3c4d5e"

LIVE = """<domain type="qemu"><name>cloudd-x</name><devices>
  <serial type="tcp"><source mode="bind" host="127.0.0.1" service="10003"/>
    <protocol type="raw"/><target port="0"/></serial>
  <console type="tcp"><source mode="bind" host="127.0.0.1" service="10003"/>
    <target type="serial" port="0"/></console>
  <graphics type="vnc" port="5907" autoport="yes" listen="127.0.0.1">
    <listen type="address" address="127.0.0.1"/></graphics>
</devices></domain>"""


def test_listeners_from_live_xml():
    assert consoles.listener(LIVE, "vnc") == {"host": "127.0.0.1", "port": 5907}
    assert consoles.listener(LIVE, "serial") == {"host": "127.0.0.1", "port": 10003}
    assert consoles.listener(LIVE, "spice") is None
    # Not started yet (autoport -1), a pty serial, no graphics: nothing to offer.
    assert consoles.listener(LIVE.replace('port="5907"', 'port="-1"'), "vnc") is None
    pty = render(Domain(uuid=UUID, display_name="a", vcpus=1, memory_mb=64))
    assert consoles.listener(pty, "serial") is None and consoles.listener(pty, "vnc") is None
    # A wildcard listen address is given as this host's name.
    anyaddr = LIVE.replace('listen="127.0.0.1"', 'listen="0.0.0.0"')
    assert consoles.listener(anyaddr, "vnc")["host"] == socket.getfqdn()


def test_port_range():
    assert consoles.port_range("10000:20000") == (10000, 20000)
    assert consoles.port_range("") is None
    with pytest.raises(ValueError):
        consoles.port_range("20000:10000")


class _Dom:
    def __init__(self, name, xml):
        self._name, self._xml = name, xml

    def name(self):
        return self._name

    def XMLDesc(self, flags):
        return self._xml


class _Conn:
    def __init__(self, *doms):
        self.doms = list(doms)

    def listAllDomains(self, flags):
        return self.doms


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _busy_above_a_free_port() -> socket.socket:
    """A listening socket whose port's lower neighbour is free just now: tests
    running in parallel hold ephemeral ports of their own, so the neighbour
    of a random one may be taken (a failure CI met once)."""
    for _ in range(50):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if _free(busy.getsockname()[1] - 1):
            return busy
        busy.close()
    raise AssertionError("no listening port with a free neighbour in 50 tries")


def test_serial_port_choice_skips_used_and_busy_ports():
    with _busy_above_a_free_port() as busy:
        port = busy.getsockname()[1]
        lo = port - 3
        other = LIVE.replace("10003", str(lo))
        conn = _Conn(_Dom("cloudd-other", other))
        # lo: another guest's; lo+1: reserved for a guest starting; lo+2 free.
        assert consoles.choose_serial_port(conn, "cloudd-new", "127.0.0.1",
                                           (lo, port), {lo + 1}) == lo + 2
        # A defined guest keeps its own port; a full range gives None.
        assert consoles.choose_serial_port(conn, "cloudd-other", "127.0.0.1",
                                           (lo, port), set()) == lo
        assert consoles.choose_serial_port(conn, "cloudd-new", "127.0.0.1",
                                           (port, port), set()) is None
