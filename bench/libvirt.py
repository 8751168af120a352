#!/usr/bin/env python
"""Real guests: cloudd's overhead over libvirt by hand, and image upload speed.

    .venv/bin/python bench/libvirt.py [--runs N] [--size-mib N]

Side by side in one run, on this host's libvirt (as root):

1. boot overhead: from the ``POST /servers`` call to the guest's first
   console line (the test guest's known line, read through the console
   output API), against ``virsh create`` of the same domain XML by hand (the
   XML cloudd's driver defined, renamed, on a copy of the same disk) to the
   same line in its console log. Ratio cloudd / by hand; target under 1.2.
   The first server warms the image cache and is not counted.
2. image upload: ``PUT /image/v2/images/ID/file`` of a file of random bytes
   (1 GiB by default) against ``cp`` of the same file on the same
   filesystem. Ratio upload throughput / cp throughput; target at least 0.7.

Figures go to the terminal and bench/libvirt-results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloudd.testing import guest as test_guest
from cloudd.testing import poll
from cloudd.testing.libvirtd import ensure_running
from cloudd.testing.process import DIRECT, CloudProcess

SHARED = Path("/var/lib/cloudd-bench")


def log(msg: str) -> None:
    print(f"[libvirt-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def virsh(*args: str, check: bool = False) -> str:
    res = subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                         text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Api:
    def __init__(self, cloud: CloudProcess) -> None:
        self.url = cloud.url
        self.pid = cloud.proc.pid
        auth = cloud.admin_auth()
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": "Default"}}}}, "scope": {"project": {
                "name": auth["project_name"], "domain": {"name": "Default"}}}}}
        with self.open("POST", "/identity/v3/auth/tokens", body, token=None) as resp:
            self.token = resp.headers["X-Subject-Token"]

    def open(self, method, path, body=None, *, token="", data=None, headers=None):
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["X-Auth-Token"] = token or self.token
        if body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, method=method, data=data, headers=hdrs)
        return DIRECT.open(req, timeout=600)

    def json(self, method, path, body=None):
        with self.open(method, path, body) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def image(self, name: str, disk_format: str, path: Path, **props) -> str:
        image = self.json("POST", "/image/v2/images", {
            "name": name, "disk_format": disk_format, "container_format": disk_format
            if disk_format in ("aki", "ari", "ami") else "bare", **props})
        self.upload(image["id"], path)
        return image["id"]

    def upload(self, image_id: str, path: Path) -> None:
        """PUT the file in 1 MiB writes (urllib's default is 8 KiB, which
        would measure this client's Python loop rather than cloudd)."""
        url = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600,
                                          blocksize=1 << 20)
        try:
            with open(path, "rb") as f:
                conn.request("PUT", f"{url.path}/image/v2/images/{image_id}/file", body=f,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Length": str(path.stat().st_size),
                                      "X-Auth-Token": self.token})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 204:
                raise RuntimeError(f"upload answered {resp.status}")
        finally:
            conn.close()


def wait_for(check, timeout: float = 300.0, interval: float = 0.1):
    return poll.wait(check, "the guest", timeout, interval=interval)


def qemu_started(domain: str, since: float) -> float | None:
    """Seconds from wall-clock ``since`` to libvirt's "starting up" line for
    ``domain`` (QEMU launched), from /var/log/libvirt/qemu/DOMAIN.log."""
    try:
        lines = Path(f"/var/log/libvirt/qemu/{domain}.log").read_text(
            errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if ": starting up" in line:
            stamp = dt.datetime.strptime(line.split(": starting up")[0],
                                         "%Y-%m-%d %H:%M:%S.%f%z")
            return stamp.timestamp() - since
    return None


def boot_via_api(api: Api, image: str) -> tuple[float, str, float | None]:
    wall0 = time.time()
    t0 = time.monotonic()
    server = api.json("POST", "/compute/v2.1/servers", {"server": {
        "name": "bench", "imageRef": image, "flavorRef": "1"}})["server"]
    sid = server["id"]

    def seen() -> bool:
        try:
            out = api.json("POST", f"/compute/v2.1/servers/{sid}/action",
                           {"os-getConsoleOutput": {"length": None}})["output"]
        except urllib.error.HTTPError:
            return False
        return test_guest.KNOWN_LINE in out

    wait_for(seen)
    return time.monotonic() - t0, sid, qemu_started(f"cloudd-{sid}", wall0)


def prepare_by_hand(sid: str, work: Path) -> tuple[Path, Path, str]:
    """The XML cloudd defined for ``sid``, as a new domain on a copy of its disk."""
    xml = virsh("dumpxml", f"cloudd-{sid}", check=True)
    new = str(uuid.uuid4())
    copy = work / f"byhand-{new}"
    copy.mkdir(mode=0o711)
    src = next(line.split("'")[1] for line in xml.splitlines()
               if "<source file=" in line and line.split("'")[1].endswith("/disk"))
    shutil.copyfile(src, copy / "disk")     # not copy2: no libvirt xattrs
    log_path = copy / "console.log"
    xml = (xml.replace(str(Path(src).parent / "console.log"), str(log_path))
              .replace(src, str(copy / "disk")).replace(sid, new))
    xml = "\n".join(line for line in xml.splitlines() if "<uuid>" not in line)
    (copy / "domain.xml").write_text(by_hand_nics(xml))
    return copy, log_path, new


BY_HAND_BRIDGE = "cdbr-byhand"


def by_hand_nics(xml: str) -> str:
    """cloudd's guest NICs, on a bridge made by hand (cloudd's went with its
    guest); libvirt makes the taps."""
    root = ET.fromstring(xml)
    for nic in root.iterfind("./devices/interface"):
        nic.find("source").set("bridge", BY_HAND_BRIDGE)
        target = nic.find("target")
        if target is not None:
            nic.remove(target)
    return ET.tostring(root, encoding="unicode")


def boot_by_hand(copy: Path, log_path: Path, new: str) -> tuple[float, float | None]:
    """``virsh create`` to the known line (the cloudd guest is gone by now: the
    two share the cached base image, which libvirt will not relabel in use)."""
    wall0 = time.time()
    t0 = time.monotonic()
    subprocess.run(["ip", "link", "add", BY_HAND_BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", BY_HAND_BRIDGE, "up"], check=True)
    try:
        virsh("create", str(copy / "domain.xml"), check=True)
        wait_for(lambda: log_path.exists() and
                 test_guest.KNOWN_LINE in log_path.read_text(errors="replace"))
        return time.monotonic() - t0, qemu_started(f"cloudd-{new}", wall0)
    finally:
        virsh("destroy", f"cloudd-{new}")
        subprocess.run(["ip", "link", "del", BY_HAND_BRIDGE])
        shutil.rmtree(copy, ignore_errors=True)


def delete_server(api: Api, sid: str) -> None:
    api.open("DELETE", f"/compute/v2.1/servers/{sid}").close()
    wait_for(lambda: f"cloudd-{sid}" not in virsh("list", "--all", "--name").split(),
             interval=0.5)


def upload_vs_cp(api: Api, work: Path, size_mib: int) -> dict:
    data = work / "upload.bin"
    with open(data, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(size_mib))
    subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # warm cache
    t0, c0 = time.monotonic(), children_cpu()
    subprocess.run(["cp", str(data), str(work / "copy.bin")], check=True)
    subprocess.run(["sync"], check=True)
    cp_s, cp_cpu = time.monotonic() - t0, children_cpu() - c0
    (work / "copy.bin").unlink()
    t0, c0 = time.monotonic(), cpu_seconds(api.pid)
    api.image("bench-upload", "raw", data)
    subprocess.run(["sync"], check=True)
    up_s, up_cpu = time.monotonic() - t0, cpu_seconds(api.pid) - c0
    data.unlink()
    return {"size_mib": size_mib, "cp_s": round(cp_s, 2), "upload_s": round(up_s, 2),
            "cp_mib_s": round(size_mib / cp_s, 1), "upload_mib_s": round(size_mib / up_s, 1),
            "ratio": round(cp_s / up_s, 2), "cp_cpu_s": round(cp_cpu, 2),
            "cloudd_cpu_s": round(up_cpu, 2), "load": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--upload-only", action="store_true", help="skip the boots")
    args = parser.parse_args()
    ensure_running()
    guest = test_guest.build()
    base = Path(tempfile.mkdtemp(prefix="cloudd-libvirt-bench-"))
    SHARED.mkdir(mode=0o711, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=SHARED))
    work.chmod(0o711)
    cloud = CloudProcess(base / "data", env={
        "CLOUDD_COMPUTE__LOCAL_AGENT": "libvirt",
        "CLOUDD_LIBVIRT__INSTANCES_DIR": str(work / "instances"),
        "CLOUDD_LIBVIRT__IMAGE_CACHE_DIR": str(work / "images"),
        "CLOUDD_LIBVIRT__PROBE_KERNEL": str(guest.kernel),
        "CLOUDD_AGENT__RESERVED_HOST_MEMORY_MB": "0",
        "CLOUDD_SERVER__LOG_LEVEL": "warning"}).start(timeout=120)
    try:
        api = Api(cloud)
        wait_for(lambda: any(s["state"] == "up" for s in api.json(
            "GET", "/compute/v2.1/os-services?binary=nova-compute")["services"]), 120, 0.5)
        boot = None
        if not args.upload_only:
            boot = boot_overhead(api, guest, work, args.runs)
        upload = upload_vs_cp(api, work, args.size_mib)
        log(f"upload: {upload}")
    finally:
        cloud.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": {"nproc": os.cpu_count(), "load": os.getloadavg()},
           "virt_type": "see serve log", "boot": boot, "upload": upload}
    (ROOT / "bench" / "libvirt-results.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


def boot_overhead(api: Api, guest, work: Path, runs: int) -> dict:
    kernel = api.image("kernel", "aki", guest.kernel)
    ramdisk = api.image("ramdisk", "ari", guest.ramdisk)
    machine = work / "machine.img"
    machine.write_bytes(b"\0" * (1 << 20))
    image = api.image("guest", "ami", machine, kernel_id=kernel, ramdisk_id=ramdisk,
                      os_command_line="console=ttyS0")
    log("warm-up boot (fills the image cache)")
    _, sid, _ = boot_via_api(api, image)
    delete_server(api, sid)
    via_api, by_hand, api_qemu, hand_qemu = [], [], [], []
    for run in range(runs):
        seconds, sid, started = boot_via_api(api, image)
        via_api.append(seconds)
        api_qemu.append(started)
        prepared = prepare_by_hand(sid, work)
        delete_server(api, sid)
        seconds, started = boot_by_hand(*prepared)
        by_hand.append(seconds)
        hand_qemu.append(started)
        log(f"run {run + 1}: API {via_api[-1]:.2f} s (QEMU up at {api_qemu[-1]} s), "
            f"by hand {by_hand[-1]:.2f} s (QEMU up at {hand_qemu[-1]} s)")

    def med(xs):
        xs = [x for x in xs if x is not None]
        return round(statistics.median(xs), 3) if xs else None
    boot = {"runs": runs, "api_median_s": round(statistics.median(via_api), 2),
            "virsh_median_s": round(statistics.median(by_hand), 2),
            "ratio": round(statistics.median(via_api) / statistics.median(by_hand), 2),
            "api_s": [round(x, 2) for x in via_api],
            "virsh_s": [round(x, 2) for x in by_hand],
            # create call -> libvirt launching QEMU: the control plane's share
            "api_to_qemu_median_s": med(api_qemu),
            "virsh_to_qemu_median_s": med(hand_qemu)}
    log(f"boot: {boot}")
    return boot


if __name__ == "__main__":
    sys.exit(main())
