"""Remote consoles of a real guest: `openstack console url show --novnc` and
`--serial` against `cloudd serve` with its local libvirt agent.

The noVNC page opens in headless Chromium (driven over its DevTools
websocket) and shows the guest's screen: the screenshot of its canvas has
many distinct non-background pixels (the guest's kernel writes to tty0 as
well as ttyS0). The serial websocket carries the guest's console both ways:
what is typed comes back echoed by the guest's tty. A used or expired token
is refused. On CI a missing libvirt or Chromium fails these tests; it never
skips.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from cloudd.testing import guest as test_guest
from cloudd.testing.process import CloudProcess
from tests.conftest import Osc
from tests.functional.libvirt_cloud import console, libvirt_cloud, unavailable, wait

CHROMIUM = ("chromium-headless-shell", "chromium")
NOVNC = Path("/usr/share/novnc/vnc_lite.html")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # tty0 too, so the VNC screen shows the kernel's text; ttyS0 last stays
    # /dev/console (the serial console and its log).
    with libvirt_cloud(tmp_path_factory.mktemp("consoles"),
                       cmdline="console=tty0 console=ttyS0",
                       shutdown_timeout=5) as (osc, cloud, _):
        server = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                          "--nic", "none", "--wait", "console-vm")
        assert server["status"] == "ACTIVE"
        wait(lambda: test_guest.KNOWN_LINE in console(osc, server["id"]),
             "the guest's known line in its console log")
        yield osc, cloud, server["id"]


def console_url(osc: Osc, sid: str, kind: str) -> dict:
    return osc.json("console", "url", "show", f"--{kind}", sid)


def expire_tokens(cloud: CloudProcess) -> None:
    """Age every console token past its expiry, in the cloud's own database."""
    with sqlite3.connect(cloud.data_dir / "cloudd.db") as db:
        db.execute("UPDATE console_auth_token SET expires_at = created_at")


async def _ws(url: str, *, protocols=("binary",)):
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, protocols=protocols)
    except BaseException:
        await session.close()
        raise
    return session, ws


async def _refused(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def _ws_url_of_novnc(url: str) -> str:
    """The websocket URL noVNC's page builds from a noVNC URL."""
    parts = urlsplit(url)
    path = parse_qs(parts.query)["path"][0]
    return f"ws://{parts.netloc}/{path}"


# -- the serial console ----------------------------------------------------------------

async def _serial_roundtrip(url: str, text: str) -> bytes:
    session, ws = await _ws(url)
    got = b""
    try:
        assert ws.protocol == "binary"
        await ws.send_bytes(text.encode() + b"\r")
        deadline = time.monotonic() + 60
        while text.encode() not in got and time.monotonic() < deadline:
            try:
                msg = await ws.receive(timeout=5)
            except TimeoutError:
                await ws.send_bytes(b"\r")
                continue
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            got += msg.data
    finally:
        await ws.close()
        await session.close()
    return got


def test_serial_console_url_carries_the_guest_console(env):
    osc, cloud, sid = env
    body = console_url(osc, sid, "serial")
    assert body["type"] == "serial"
    url = body["url"]
    assert url.startswith(cloud.url.replace("http://", "ws://") + "/console/serial?token=")
    # What is typed reaches the guest, whose tty echoes it back.
    got = asyncio.run(_serial_roundtrip(url, "hello-from-the-console"))
    assert b"hello-from-the-console" in got, got
    # The token was used: a second connection is refused.
    assert asyncio.run(_refused(url)) == 401
    # An expired token is refused too.
    url = console_url(osc, sid, "serial")["url"]
    expire_tokens(cloud)
    assert asyncio.run(_refused(url)) == 401
    # The console log still has the guest's output.
    assert test_guest.KNOWN_LINE in osc.run("console", "log", "show", sid).stdout


# -- VNC -----------------------------------------------------------------------------

async def _rfb_greeting(url: str) -> bytes:
    session, ws = await _ws(url)
    try:
        msg = await ws.receive(timeout=30)
        return msg.data
    finally:
        await ws.close()
        await session.close()


def test_novnc_url_speaks_rfb_once(env):
    osc, cloud, sid = env
    body = console_url(osc, sid, "novnc")
    assert body["type"] == "novnc"
    url = body["url"]
    assert url.startswith(f"{cloud.url}/console/novnc/vnc_lite.html?path=console%2F"
                          "websockify%3Ftoken%3D")
    if not NOVNC.exists():
        unavailable("noVNC is not installed (Debian's novnc package; make test-system-deps)")
    with urllib.request.urlopen(url, timeout=30) as resp:
        page = resp.read().decode()
    assert "noVNC" in page and "<script" in page and "</html>" in page
    ws_url = _ws_url_of_novnc(url)
    assert asyncio.run(_rfb_greeting(ws_url)).startswith(b"RFB 003.")
    assert asyncio.run(_refused(ws_url)) == 401


# -- the noVNC page in headless Chromium --------------------------------------------

def _chromium() -> str | None:
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """A page of headless Chromium, driven over its DevTools websocket."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, method: str, **params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send_json({"id": mid, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    async def eval(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True)
        return result["result"].get("value")


async def _screenshot(chrome: str, url: str, profile: Path) -> tuple[bytes, dict, str]:
    proc = await asyncio.create_subprocess_exec(
        chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "--window-size=1100,900", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            await asyncio.sleep(0.2)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"],
                                          max_msg_size=64 * 1024 * 1024) as ws:
                page = DevTools(ws)
                await page.send("Page.enable")
                await page.send("Page.navigate", url=url)
                status = ""
                deadline = time.monotonic() + 90
                while "Connected" not in status and time.monotonic() < deadline:
                    await asyncio.sleep(1)
                    status = await page.eval(
                        "(document.getElementById('status')||{}).textContent||''") or ""
                assert "Connected" in status, f"noVNC status: {status!r}"
                # Let the guest's screen arrive, then find the canvas.
                rect = None
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    await asyncio.sleep(2)
                    rect = await page.eval(
                        "(() => { const c = document.querySelector('#screen canvas');"
                        " if (!c) return null; const r = c.getBoundingClientRect();"
                        " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
                    if rect and rect["width"] > 100 and rect["height"] > 100:
                        break
                assert rect and rect["width"] > 100, f"no noVNC canvas: {rect}"
                shot = await page.send("Page.captureScreenshot", format="png",
                                       clip={**rect, "scale": 1})
                return base64.b64decode(shot["data"]), rect, status
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)      # the browser and its helpers
        await proc.wait()


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc
                                      else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_novnc_page_shows_the_guest_screen_in_chromium(env, tmp_path):
    osc, _, sid = env
    chrome = _chromium()
    if chrome is None:
        unavailable("headless Chromium is not installed (Debian's chromium-headless-shell)")
    if not NOVNC.exists():
        unavailable("noVNC is not installed (Debian's novnc package)")
    url = console_url(osc, sid, "novnc")["url"]
    profile = Path(tempfile.mkdtemp(dir=tmp_path))
    png, rect, status = asyncio.run(_screenshot(chrome, url, profile))
    (tmp_path / "screen.png").write_bytes(png)
    width, height, pixels = _png_pixels(png)
    assert width >= 100 and height >= 100
    counts: dict[bytes, int] = {}
    for px in pixels:
        counts[px] = counts.get(px, 0) + 1
    background = max(counts, key=counts.get)
    lit = len(pixels) - counts[background]
    # Text on the guest's screen: a good share of pixels differ from the
    # background (a blank or black canvas has none).
    assert lit > 1000, (lit, len(counts), rect, status, json.dumps(
        {px.hex(): n for px, n in sorted(counts.items(), key=lambda kv: -kv[1])[:5]}))


# -- Tempest's own noVNC checks ----------------------------------------------------

TEMPEST_CHECK = """
import sys, urllib.parse as up
from tempest.common import compute

class Check(compute.NoVNCValidateMixin):
    def runTest(self):
        pass

good, bad = sys.argv[1], sys.argv[2]
t = Check()
t.validate_novnc_html(good)                     # test_novnc
t.websocket = compute.create_websocket(good)
t.validate_websocket_upgrade()
t.validate_rfb_negotiation()
t.websocket.close()
parts = up.urlparse(bad)                        # test_novnc_bad_token
q = up.parse_qs(parts.query)
q["path"] = up.unquote(q["path"][0]).replace("token=", "token=bad")
url = up.urlunparse(up.ParseResult(parts.scheme, parts.netloc, parts.path, parts.params,
                                   up.urlencode(q), parts.fragment))
ws = compute.create_websocket(url)
data = ws.receive_frame()
assert data is None or not data, data
ws.close()
print("tempest-novnc-ok")
"""


def test_tempest_novnc_checks_pass(env):
    """Tempest's test_novnc / test_novnc_bad_token code (its raw websocket
    client and RFB negotiation) against the proxy and the guest's real VNC."""
    from cloudd.testing import tempest
    if not tempest.PYTHON.exists():
        unavailable("Tempest's venv is missing (make test-venv)")
    if not NOVNC.exists():
        unavailable("noVNC is not installed (Debian's novnc package)")
    osc, _, sid = env
    good = console_url(osc, sid, "novnc")["url"]
    bad = console_url(osc, sid, "novnc")["url"]
    out = subprocess.run([str(tempest.PYTHON), "-c", TEMPEST_CHECK, good, bad],
                         capture_output=True, text=True, timeout=120, check=False)
    assert "tempest-novnc-ok" in out.stdout, out.stdout + out.stderr
