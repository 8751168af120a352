#!/usr/bin/env python
"""Compute at scale: 1,000 servers through the API against 10 fake agents.

    .venv/bin/python bench/compute.py [--servers N] [--agents N] [--backend sqlite|postgresql|both]
                                      [--poll cheap|detail] [--networks none|auto|omit]
                                      [--creates-only] [--profile]

For each database: starts `cloudd serve` (no local agent) and N `cloudd agent`
processes on the fake driver, then with concurrent clients creates the
servers one request each, waits until all are ACTIVE, times list-detail with
all of them present, and deletes them. Reports: time from the first create
to all ACTIVE, create latency p50/p99, list-detail latency p50/p99,
scheduler decisions per second (servers placed over the span from the first
create to the moment placement holds a claim for every one of them), the CPU
the serve process used from the first create to all ACTIVE, and its peak RSS
(VmHWM). The wait polls cheaply (placement usages, a one-item BUILD list,
an ERROR check) from a connection of its own; ``--poll detail`` polls the
whole servers/detail as the first version did. ``--profile`` samples the
serve process from the first create to all ACTIVE with py-spy (``pip install py-spy``) into the run's
temporary directory (its path is printed). The issue's targets: all ACTIVE in under
20 s on 2 cores, create p50 under 30 ms. Figures go to the terminal and
bench/compute-results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloudd.testing.agents import AgentProcess
from cloudd.testing.postgres import PostgresServer
from cloudd.testing.process import CloudProcess

NOVA = {"OpenStack-API-Version": "compute 2.1"}


def log(msg: str) -> None:
    print(f"[compute-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def token(session: aiohttp.ClientSession, cloud: CloudProcess) -> tuple[str, str]:
    """(token, its project id)."""
    auth = cloud.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"],
        "domain": {"name": "Default"}}}}, "scope": {"project": {
            "name": auth["project_name"], "domain": {"name": "Default"}}}}}
    async with session.post(cloud.url + "/identity/v3/auth/tokens", json=body) as r:
        r.raise_for_status()
        return r.headers["X-Subject-Token"], (await r.json())["token"]["project"]["id"]


async def image_id(session, cloud, headers) -> str:
    async with session.post(cloud.url + "/image/v2/images", headers=headers, json={
            "name": "bench", "disk_format": "raw", "container_format": "bare",
            "visibility": "public"}) as r:
        r.raise_for_status()
        image = await r.json()
    async with session.put(f"{cloud.url}/image/v2/images/{image['id']}/file",
                           data=b"\0" * 65536,
                           headers={**headers, "Content-Type": "application/octet-stream"}) as r:
        r.raise_for_status()
    return image["id"]


async def wait_hosts(session, cloud, headers, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with session.get(cloud.url + "/compute/v2.1/os-services?binary=nova-compute",
                               headers=headers) as r:
            services = (await r.json())["services"]
        if sum(s["state"] == "up" for s in services) >= count:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("agents did not come up")


async def watch_detail(cloud: CloudProcess, headers: dict, project: str, servers: int,
                       start: float, creating: asyncio.Event) -> dict:
    """The first version's poll (--poll detail): after the creates, the whole
    servers/detail every 0.2 s until all are ACTIVE. With 1,000 servers each
    poll costs the server ~100 ms of CPU, so it slows what it measures."""
    placed_at = None
    async with aiohttp.ClientSession() as s:
        while creating.is_set():
            await asyncio.sleep(0.05)
        while True:
            async with s.get(cloud.url + "/compute/v2.1/servers/detail",
                             headers=headers) as r:
                listed = (await r.json())["servers"]
            now = time.monotonic() - start
            statuses = [x["status"] for x in listed]
            if placed_at is None and all(x.get("OS-EXT-SRV-ATTR:host") for x in listed):
                placed_at = now
            if statuses.count("ACTIVE") == servers:
                return {"placed_at": placed_at, "active_at": now}
            if "ERROR" in statuses:
                raise RuntimeError(f"{statuses.count('ERROR')} servers went to ERROR")
            if now > 600:
                raise RuntimeError("servers not ACTIVE after 600 s")
            await asyncio.sleep(0.2)


async def watch(cloud: CloudProcess, headers: dict, project: str, servers: int,
                start: float, creating: asyncio.Event) -> dict:
    """Poll cheaply (its own connection) until every server is ACTIVE: how many
    claims placement holds for the project (the scheduler's decisions) and how
    many servers are still BUILD (the index, not the detail, so the poll costs
    the server under test little); ERROR ends the run."""
    placement = {"X-Auth-Token": headers["X-Auth-Token"],
                 "OpenStack-API-Version": "placement 1.9"}
    placed_at = None
    async with aiohttp.ClientSession() as s:
        while True:
            now = time.monotonic() - start
            if placed_at is None:
                async with s.get(f"{cloud.url}/placement/usages?project_id={project}",
                                 headers=placement) as r:
                    usages = (await r.json())["usages"]
                if usages.get("VCPU", 0) >= servers:       # flavor 1: one VCPU each
                    placed_at = now
            async with s.get(cloud.url + "/compute/v2.1/servers?status=ERROR&limit=1",
                             headers=headers) as r:
                if (await r.json())["servers"]:
                    raise RuntimeError("a server went to ERROR")
            if not creating.is_set():
                async with s.get(cloud.url + "/compute/v2.1/servers?status=BUILD&limit=1",
                                 headers=headers) as r:
                    if not (await r.json())["servers"]:
                        return {"placed_at": placed_at or now, "active_at": now}
            if now > 600:
                raise RuntimeError("servers not ACTIVE after 600 s")
            await asyncio.sleep(0.1)


def commands_written(cloud: CloudProcess) -> dict | None:
    """Agent commands the serve process has written, by op (SQLite only)."""
    if "CLOUDD_DATABASE__URL" in cloud.extra_env:
        return None
    import sqlite3
    with sqlite3.connect(f"file:{cloud.data_dir / 'cloudd.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT op, count(*) FROM agent_command GROUP BY op"))


async def run_once(cloud: CloudProcess, servers: int, agents: int, concurrency: int,
                   poll: str = "cheap", networks: str = "none", phase=None,
                   creates_only: bool = False) -> dict:
    """``phase(name)``, if given, is called with "boot" as the creates start
    and "active" once all are ACTIVE (the profiler samples that span).
    ``creates_only``: stop once every create is answered (the poller ran
    beside them, as in a full run) and report the creates alone."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        tok, project = await token(s, cloud)
        headers = {"X-Auth-Token": tok, **NOVA}
        await wait_hosts(s, cloud, headers, agents)
        image = await image_id(s, cloud, headers)
        body = {"server": {"name": "b", "imageRef": image, "flavorRef": "1"}}
        create_headers = headers
        if networks != "omit":
            # 2.37: "none" boots without ports, "auto" with one on the default network.
            body["server"]["networks"] = networks
            create_headers = {**headers, "OpenStack-API-Version": "compute 2.37"}
        create_ms: list[float] = []
        queue = list(range(servers))

        async def creator() -> None:
            while queue:
                queue.pop()
                t0 = time.perf_counter()
                async with s.post(cloud.url + "/compute/v2.1/servers", json=body,
                                  headers=create_headers) as r:
                    await r.read()
                    if r.status != 202:
                        raise RuntimeError(f"create: {r.status} {await r.text()}")
                create_ms.append((time.perf_counter() - t0) * 1000)

        load0 = os.getloadavg()[0]
        if phase:
            phase("boot")
        cpu0 = cpu_seconds(cloud.proc.pid)
        creating = asyncio.Event()
        creating.set()
        start = time.monotonic()
        watcher = asyncio.create_task((watch_detail if poll == "detail" else watch)(
            cloud, headers, project, servers, start, creating))
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        created = time.monotonic() - start
        creating.clear()
        if creates_only:
            watcher.cancel()
            return {"servers": servers, "agents": agents, "concurrency": concurrency,
                    "create_seconds": round(created, 2),
                    "create_p50_ms": round(statistics.median(create_ms), 1),
                    "create_p99_ms": round(pct(create_ms, 99), 1),
                    "load_at_start": round(load0, 2)}
        seen = await watcher
        active_cpu = cpu_seconds(cloud.proc.pid) - cpu0
        if phase:
            phase("active")
        commands = commands_written(cloud)
        placed_at, active_at = seen["placed_at"], seen["active_at"]
        async with s.get(cloud.url + "/compute/v2.1/servers/detail", headers=headers) as r:
            listed = (await r.json())["servers"]
        statuses = [x["status"] for x in listed]
        if len(listed) != servers or statuses.count("ACTIVE") != servers:
            raise RuntimeError(f"expected {servers} ACTIVE servers, got {len(listed)}: "
                               f"{ {st: statuses.count(st) for st in set(statuses)} }")
        placed_at = placed_at or active_at
        list_ms = []
        for _ in range(20):
            t0 = time.perf_counter()
            async with s.get(cloud.url + "/compute/v2.1/servers/detail",
                             headers=headers) as r:
                await r.read()
            list_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.monotonic()
        ids = [x["id"] for x in listed]

        async def deleter() -> None:
            while ids:
                sid = ids.pop()
                async with s.delete(f"{cloud.url}/compute/v2.1/servers/{sid}",
                                    headers=headers) as r:
                    await r.read()

        await asyncio.gather(*(deleter() for _ in range(concurrency)))
        while True:
            async with s.get(cloud.url + "/compute/v2.1/servers", headers=headers) as r:
                if not (await r.json())["servers"]:
                    break
            await asyncio.sleep(0.2)
        deleted = time.monotonic() - t0
    return {"servers": servers, "agents": agents, "concurrency": concurrency,
            "create_seconds": round(created, 2), "all_active_seconds": round(active_at, 2),
            "create_p50_ms": round(statistics.median(create_ms), 1),
            "create_p99_ms": round(pct(create_ms, 99), 1),
            "list_detail_p50_ms": round(statistics.median(list_ms), 1),
            "list_detail_p99_ms": round(pct(list_ms, 99), 1),
            "scheduler_decisions_per_s": round(servers / placed_at, 1),
            "delete_all_seconds": round(deleted, 2),
            "serve_cpu_to_active_seconds": round(active_cpu, 2),
            "serve_cpu_ms_per_server": round(active_cpu / servers * 1000, 1),
            "load_at_start": round(load0, 2),
            "commands_to_active": commands,
            "peak_rss_mb": round(vm_hwm_mb(cloud.proc.pid), 1)}


def bench_backend(backend: str, args, pg: PostgresServer | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"cloudd-compute-bench-{backend}-"))
    env = {"CLOUDD_COMPUTE__LOCAL_AGENT": "none", "CLOUDD_QUOTA__INSTANCES": "-1",
           "CLOUDD_QUOTA__CORES": "-1", "CLOUDD_QUOTA__RAM": "-1",
           "CLOUDD_SERVER__ACCESS_LOG": "false", "CLOUDD_SERVER__LOG_LEVEL": "warning",
           # room for every server's port (a /24 holds 253; 500 ports per project)
           "CLOUDD_NETWORK__DEFAULT_CIDR": "10.252.0.0/20", "CLOUDD_NETWORK__QUOTA_PORT": "-1"}
    if pg is not None:
        env["CLOUDD_DATABASE__URL"] = pg.create_database(f"bench_{os.getpid()}")
    cloud = CloudProcess(work / "data", env=env).start(timeout=60)
    agent_env = {"CLOUDD_FAKE_DRIVER__VCPUS": "256", "CLOUDD_FAKE_DRIVER__MEMORY_MB": "262144",
                 "CLOUDD_SERVER__LOG_LEVEL": "warning"}
    agents = [AgentProcess(cloud, f"bench{i:02d}", env=agent_env).start()
              for i in range(args.agents)]
    spy = None
    out = work / f"profile-{backend}.{args.profile_format}"

    def phase(name: str) -> None:
        """Sample the serve process from the first create to all ACTIVE."""
        nonlocal spy
        import signal
        import subprocess
        if name == "boot":
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "-p", str(cloud.proc.pid), "-o", str(out), "-r", "100",
                                    "-f", args.profile_format, "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            log(f"profiling the serve process into {out}")
        elif spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)

    try:
        log(f"{backend}: {args.servers} servers, {args.agents} agents")
        result = asyncio.run(run_once(cloud, args.servers, args.agents, args.concurrency,
                                      args.poll, args.networks,
                                      phase if args.profile else None,
                                      args.creates_only))
        result["poll"] = args.poll
        result["networks"] = args.networks
        result["backend"] = backend
        log(json.dumps(result))
        return result
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        for agent in agents:
            agent.stop()
        cloud.stop()
        if spy is None:                 # a profile stays beside its run's files
            import shutil
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--poll", choices=["cheap", "detail"], default="cheap",
                        help="how to wait for ACTIVE: placement usages + a 1-item "
                             "BUILD list (default), or the full detail list as the "
                             "first version did")
    parser.add_argument("--networks", choices=["none", "auto", "omit"], default="none",
                        help="the servers' networks (microversion 2.37): none (default; "
                             "the compute path alone, as the figures before the network "
                             "service), auto (a port each on the default network, in the "
                             "default security group), omit (2.1 without the key: auto)")
    parser.add_argument("--creates-only", action="store_true",
                        help="stop once the creates are answered: create latency "
                             "alone, in a fraction of a full run's time")
    parser.add_argument("--profile", action="store_true",
                        help="sample the serve process with py-spy (pip install py-spy)")
    parser.add_argument("--profile-format", default="raw", choices=["raw", "flamegraph",
                                                                    "speedscope"])
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    pg = PostgresServer().start() if "postgresql" in backends else None
    try:
        results = [bench_backend(b, args, pg if b == "postgresql" else None)
                   for b in backends]
    finally:
        if pg is not None:
            pg.stop()
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                       "load_at_end": os.getloadavg()[0]},
           "results": results}
    (ROOT / "bench" / "compute-results.json").write_text(json.dumps(out, indent=2))
    cols = ["backend", "all_active_seconds", "create_p50_ms", "create_p99_ms",
            "list_detail_p50_ms", "list_detail_p99_ms", "scheduler_decisions_per_s",
            "delete_all_seconds", "serve_cpu_ms_per_server", "peak_rss_mb", "load_at_start"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r.get(c, "-")) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
