"""The metadata proxy on a real bridge: a "guest" in its own network namespace,
plugged into a bridge by a veth pair, reaches the listener on the bridge's
address and gets its own documents; the listener is bound to the bridge, so
the same address reached another way (here: from the host itself) gets no
answer. Needs root (bridges, veth, network namespaces)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from cloudd.agent.metadata_proxy import MetadataProxy
from cloudd.testing.postgres import free_port
from cloudd.web.app import build_root
from tests.metadata.conftest import need

pytestmark = pytest.mark.asyncio


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Guests:
    """Bridges with a host address, each with a namespace plugged in by a veth pair."""

    def __init__(self) -> None:
        self.undo: list[tuple[str, ...]] = []
        self.tag = f"{os.getpid() % 1000:03d}{random.randrange(100):02d}"
        self.third = random.randrange(250)

    def add(self, n: int) -> dict:
        net = f"10.198.{self.third + n}"
        tag = f"{self.tag}{n}"
        bridge, host_end, guest_end, ns = f"n3b{tag}", f"n3h{tag}", f"n3c{tag}", f"n3ns{tag}"
        ip("link", "add", bridge, "type", "bridge")
        self.undo.append(("link", "del", bridge))
        ip("addr", "add", f"{net}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        ip("netns", "add", ns)
        self.undo.append(("netns", "del", ns))
        ip("link", "add", host_end, "type", "veth", "peer", "name", guest_end)
        self.undo.append(("link", "del", host_end))
        ip("link", "set", host_end, "master", bridge, "up")
        ip("link", "set", guest_end, "netns", ns)
        ip("-n", ns, "addr", "add", f"{net}.7/24", "dev", guest_end)
        ip("-n", ns, "link", "set", guest_end, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "route", "add", "default", "via", f"{net}.1")
        return {"bridge": bridge, "ns": ns, "host_address": f"{net}.1/24", "cidr": f"{net}.0/24",
                "host_ip": f"{net}.1", "guest_ip": f"{net}.7"}

    def close(self) -> None:
        for args in reversed(self.undo):
            subprocess.run(["ip", *args], check=False, capture_output=True, timeout=30)


@pytest.fixture
def guests():
    need("ip", root=True)                # bridges, veth pairs, network namespaces
    g = Guests()
    try:
        yield g
    finally:
        g.close()


@pytest.fixture
def guest_ns(guests):
    return guests.add(0)


async def run_in(ns: str, code: str) -> str:
    """Run Python ``code`` inside the namespace; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", code,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode("latin-1")


async def in_ns(ns: str, url: str) -> tuple[int, bytes]:
    """GET url from inside the namespace: (status, body)."""
    code = ("import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen({url!r}, timeout=20)\n"
            "    status, body = r.status, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    status, body = e.code, e.read()\n"
            "sys.stdout.write(str(status) + '\\n'); sys.stdout.flush()\n"
            "sys.stdout.buffer.write(body)\n")
    status, _, body = (await run_in(ns, code)).partition("\n")
    return int(status), body.encode("latin-1")


@pytest_asyncio.fixture
async def proxy_on_bridge(md, guest_ns):
    md.pub = await md.keypair()
    md.web = await md.server("web-1", key_name="alice-key")
    md.net = await md.subnet(guest_ns["cidr"])
    await md.plug(md.web, guest_ns["guest_ip"], network_id=md.net)
    controller = TestServer(build_root(md.cloud), host="127.0.0.1", port=free_port())
    await controller.start_server()
    secret = (await md.credential("h1")).split(":", 1)[1]
    proxy = MetadataProxy(f"http://127.0.0.1:{controller.port}", "h1", secret,
                          port=free_port())
    await proxy.ensure(md.net, guest_ns["host_address"], device=guest_ns["bridge"])
    try:
        yield md, guest_ns, proxy
    finally:
        await proxy.close()
        await controller.close()


async def test_a_guest_behind_a_bridge_gets_its_own_documents(proxy_on_bridge):
    md, g, proxy = proxy_on_bridge
    base = f"http://{g['host_ip']}:{proxy.port}"
    status, body = await in_ns(g["ns"], base + "/openstack/latest/meta_data.json")
    assert status == 200
    meta = json.loads(body)
    assert meta["uuid"] == md.web and meta["public_keys"] == {"alice-key": md.pub}
    status, body = await in_ns(g["ns"], base + "/latest/meta-data/local-ipv4")
    assert (status, body) == (200, g["guest_ip"].encode())


async def test_the_listener_takes_only_what_comes_through_its_bridge(proxy_on_bridge,
                                                                     guests):
    """A guest on another bridge, routed to this bridge's address through the
    host, is refused: its request never reaches the controller as this network's."""
    md, g, proxy = proxy_on_bridge
    other = guests.add(1)
    other_net = await md.subnet(other["cidr"])
    await md.plug(await md.server("intruder"), other["guest_ip"], network_id=other_net)
    code = ("import socket, sys\n"
            "s = socket.socket()\n"
            "s.settimeout(10)\n"
            "try:\n"
            f"    s.connect(({g['host_ip']!r}, {proxy.port}))\n"
            "except OSError as e:\n"
            "    print('refused', type(e).__name__)\n"
            "else:\n"
            "    print('connected')\n")
    out = await run_in(other["ns"], code)
    assert out.startswith("refused"), out
    # The same guest can reach the address itself (so it is the binding that refuses).
    code = code.replace(str(proxy.port), "1")
    out = await run_in(other["ns"], code)
    assert "ConnectionRefusedError" in out, out


async def test_169_254_169_254_through_a_dnat_reaches_the_proxy(proxy_on_bridge):
    """The path cloud-init takes: 169.254.169.254:80, DNATed on the bridge to
    the listener (the rule the host plumbing installs, in a table of our own)."""
    need("nft")
    md, g, proxy = proxy_on_bridge
    table = f"n3test{os.getpid()}"
    rules = (f"table ip {table} {{\n"
             " chain prerouting {\n"
             "  type nat hook prerouting priority dstnat; policy accept;\n"
             f"  iifname \"{g['bridge']}\" ip daddr 169.254.169.254 tcp dport 80"
             f" dnat to {g['host_ip']}:{proxy.port}\n"
             " }\n}\n")
    await asyncio.to_thread(subprocess.run, ["nft", "-f", "-"], input=rules, text=True,
                            check=True, capture_output=True, timeout=30)
    try:
        status, body = await in_ns(g["ns"], "http://169.254.169.254/openstack/latest/"
                                            "meta_data.json")
        assert status == 200 and json.loads(body)["uuid"] == md.web
        status, body = await in_ns(g["ns"], "http://169.254.169.254/latest/meta-data/"
                                            "public-keys/0/openssh-key")
        assert (status, body) == (200, md.pub.encode())
    finally:
        await asyncio.to_thread(subprocess.run, ["nft", "delete", "table", "ip", table],
                                check=False, capture_output=True, timeout=30)
