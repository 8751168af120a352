#!/usr/bin/env python
"""cloudd's Placement against openstack-placement, side by side in one run.

    .venv/bin/python bench/placement.py [--quick] [--db postgresql|sqlite]

Builds the same world in both, over the HTTP API and with the same provider
UUIDs: N resource providers (default 200) with VCPU/MEMORY_MB/DISK_GB
inventory, a few traits, some in aggregates, half of them carrying an
allocation. Checks that both give the same answers, then measures:

1. start time: process start to the first HTTP 200 on the Placement root,
   median of a few restarts alternating between the servers, and the one-off
   set-up (cloudd's first start with bootstrap / ``placement-manage db sync``);
2. building the world (both servers at once, allocations in batches through
   POST /allocations): write requests/s and server CPU per write;
3. idle RSS (and PSS) once built and settled: cloudd's one process against the
   sum over gunicorn's master and workers;
4. requests/s and p50/p99 latency of concurrent aiohttp clients, in slices that
   alternate between the servers, each workload after an unmeasured warm-up:
   ``GET /allocation_candidates`` at microversion 1.39 (plain, with required
   and forbidden traits, with ``member_of``), ``PUT /allocations/{new consumer}``
   followed by its ``DELETE``, ``GET /resource_providers`` and ``GET /usages``.

cloudd: ``cloudd serve`` with noauth2, no local compute agent, a fresh data
directory, Placement at the root of its own listener. The reference:
``openstack-placement`` from PyPI in its own venv (``bench/.placement-venv``,
gitignored, made on first use), noauth2, served by gunicorn with 2 sync
workers as DevStack serves it with uwsgi. Both on the same database: a
throwaway PostgreSQL cluster (default when its binaries are installed) or
SQLite. Results go to the terminal, ``bench/placement-results.json`` and
``.md``; ``docs/benchmarks.md`` carries the figures. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    HOST,
    Server,
    clean_env,
    cold_starts,
    commit,
    compile_tree,
    cpu_seconds,
    dist_version,
    free_port,
    log,
    machine,
    machine_busy_seconds,
    other_load,
    own_cpu_seconds,
    site_packages,
    wait_quiet,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PLACEMENT_REQUIREMENTS = ["openstack-placement==16.0.0", "gunicorn==27.0.1",
                          "psycopg2-binary==2.9.13"]
MICROVERSION = "1.39"
HEADERS = {"X-Auth-Token": "admin", "OpenStack-API-Version": f"placement {MICROVERSION}",
           "Accept": "application/json"}
NS = uuid.UUID("6f1c0d4e-0b1a-4c55-9f7e-3a8c2d1b0e99")
PROJECT = str(uuid.uuid5(NS, "project"))
USER = str(uuid.uuid5(NS, "user"))
AGG_A, AGG_B = str(uuid.uuid5(NS, "aggregate-a")), str(uuid.uuid5(NS, "aggregate-b"))
RESOURCES = "VCPU:1,MEMORY_MB:512,DISK_GB:10"
# GET /usages is asked at 1.37: from 1.38 (consumer types) openstack-placement
# 16.0.0 fails it on PostgreSQL with a 500 (GroupingError in its SQL).
USAGES_MICROVERSION = "1.37"
USAGES_HEADERS = {"OpenStack-API-Version": f"placement {USAGES_MICROVERSION}"}


def rp_uuid(i: int) -> str:
    return str(uuid.uuid5(NS, f"rp-{i}"))


def world_traits(i: int) -> list[str]:
    traits = ["COMPUTE_NODE"]
    if i % 2 == 0:
        traits.append("HW_CPU_X86_AVX2")
    if i % 3 == 0:
        traits.append("STORAGE_DISK_SSD")
    if i % 10 == 0:
        traits.append("CUSTOM_BENCH_MAINTENANCE")
    return traits


def world_aggregates(i: int) -> list[str]:
    return [AGG_A] if i % 5 == 0 else [AGG_B] if i % 5 == 1 else []


def world_inventory(i: int) -> dict:
    # One in ten is too small in memory for the 512 MB request: capacity filtering.
    mem = 256 if i % 10 == 9 else 262144
    return {"VCPU": {"total": 64, "allocation_ratio": 4.0, "max_unit": 64},
            "MEMORY_MB": {"total": mem, "max_unit": mem, "reserved": 0},
            "DISK_GB": {"total": 4000, "max_unit": 4000, "reserved": 10}}


# The scheduler's hot path, as Nova asks it (max_placement_results = 1000).
def candidate_queries(limit: int) -> dict[str, str]:
    base = f"/allocation_candidates?resources={RESOURCES}"
    lim = f"&limit={limit}" if limit else ""
    return {
        "candidates": base + lim,
        "candidates_traits": base + "&required=HW_CPU_X86_AVX2,STORAGE_DISK_SSD,"
                                    "!CUSTOM_BENCH_MAINTENANCE" + lim,
        "candidates_member_of": base + f"&member_of=in:{AGG_A},{AGG_B}" + lim,
    }


@dataclass
class Target:
    server: Server
    setup_s: float = 0.0
    versions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def url(self) -> str:
        return self.server.url


# --------------------------------------------------------------------------
# the two servers


PLACEMENT_CONF = """\
[DEFAULT]
debug = false
log_file = {work}/placement.log

[api]
auth_strategy = noauth2

[placement_database]
connection = {db}
"""


def ensure_placement_venv(venv: Path) -> None:
    """Create the reference's venv if it is missing or stale; idempotent."""
    marker = venv / ".bench-installed"
    want = "\n".join(PLACEMENT_REQUIREMENTS) + "\n"
    if marker.exists() and marker.read_text() == want and (venv / "bin" / "gunicorn").exists():
        return
    log(f"installing {' '.join(PLACEMENT_REQUIREMENTS)} into {venv} (once; under a minute)")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    with open(BENCH / ".placement-venv.log", "wb") as out:   # pip's warnings, kept aside
        subprocess.run([py, "-m", "pip", "install", "-q", *PLACEMENT_REQUIREMENTS],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    compile_tree(py, site_packages(venv))
    marker.write_text(want)


def prepare_placement(venv: Path, work: Path, workers: int, db_url: str) -> Target:
    work.mkdir(parents=True)
    port = free_port()
    (work / "placement.conf").write_text(PLACEMENT_CONF.format(work=work, db=db_url))
    env = clean_env({"OS_PLACEMENT_CONFIG_DIR": str(work)})
    t0 = time.perf_counter()
    with open(work / "manage.log", "ab") as out:
        r = subprocess.run([str(venv / "bin" / "placement-manage"), "--config-file",
                            str(work / "placement.conf"), "db", "sync"], check=False, env=env,
                           cwd=work, stdout=out, stderr=subprocess.STDOUT)
    if r.returncode:
        raise RuntimeError(f"placement-manage db sync failed; see {work}/manage.log")
    setup_s = time.perf_counter() - t0
    cmd = [str(venv / "bin" / "gunicorn"), "--chdir", str(work), "--workers", str(workers),
           "--worker-class", "sync", "--bind", f"{HOST}:{port}",
           "--control-socket", str(work / "gunicorn.ctl"), "placement.wsgi.api:application"]
    target = Target(Server("placement", cmd, env, port, "/", work / "gunicorn.log", work),
                    setup_s)
    py = str(venv / "bin" / "python")
    target.versions = {n: dist_version(py, n) for n in
                       ("openstack-placement", "gunicorn", "SQLAlchemy", "oslo.db")}
    target.notes.append(f"gunicorn, {workers} sync workers (DevStack: max(2, nproc/4) uwsgi "
                        "processes); RSS/PSS summed over master + workers")
    return target


def prepare_cloudd(work: Path, db_url: str) -> Target:
    import cloudd
    compile_tree(sys.executable, [Path(cloudd.__file__).parent])
    port, placement_port = free_port(), free_port()
    exe = Path(sys.executable).parent / "cloudd"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "cloudd"]
    cmd = base + ["--data-dir", str(work / "data"), "serve", "--listen", f"{HOST}:{port}"]
    extra = {"CLOUDD_AUTH__STRATEGY": "noauth2", "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
             "CLOUDD_LISTENERS__PLACEMENT": f"{HOST}:{placement_port}"}
    if db_url:
        extra["CLOUDD_DATABASE__URL"] = db_url
    work.mkdir(parents=True, exist_ok=True)
    server = Server("cloudd", cmd, clean_env(extra), placement_port, "/",
                    work / "serve.log", work)
    setup_s = server.start()          # first start: schema, keys, standard traits
    server.stop()
    target = Target(server, setup_s)
    target.versions = {n: importlib.metadata.version(n) for n in
                       ("cloudd", "aiohttp", "SQLAlchemy", "uvloop")}
    target.versions["python"] = platform.python_version()
    target.notes.append("one process (aiohttp + uvloop), Placement at the root of its "
                        "own listener; noauth2, [compute] local_agent = none")
    return target


# --------------------------------------------------------------------------
# HTTP


def session(concurrency: int, timeout: float = 120) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                 timeout=aiohttp.ClientTimeout(total=timeout), headers=HEADERS)


async def call(s: aiohttp.ClientSession, t: Target, method: str, path: str,
               body: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    async with s.request(method, t.url + path, json=body, headers=headers) as r:
        return r.status, await r.read()


async def must(s: aiohttp.ClientSession, t: Target, method: str, path: str,
               body: dict | None = None, ok: tuple[int, ...] = (200, 201, 204),
               headers: dict | None = None) -> dict:
    status, data = await call(s, t, method, path, body, headers)
    if status not in ok:
        raise RuntimeError(f"{t.name}: {method} {path} gave {status}: {data[:400]!r}")
    return json.loads(data) if data else {}


def claim_body(rp: str, vcpu: int = 1, mem: int = 512, disk: int = 10) -> dict:
    return {"allocations": {rp: {"resources": {"VCPU": vcpu, "MEMORY_MB": mem,
                                               "DISK_GB": disk}}},
            "project_id": PROJECT, "user_id": USER, "consumer_generation": None,
            "consumer_type": "INSTANCE"}


ALLOCATION_BATCH = 100     # consumers per POST /allocations while building


async def build_world(t: Target, n: int, concurrency: int) -> dict:
    """Create the providers and everything on them; every write is timed.

    Per provider: POST /resource_providers, PUT its inventories, its traits
    and (two in five) its aggregates, each with the generation the previous
    write left (0, 1, 2: known in advance). Then the allocations of every
    other provider, ALLOCATION_BATCH consumers per POST /allocations.
    """
    lat: list[float] = []

    async def timed(s, method, path, body=None):
        t0 = time.perf_counter()
        out = await must(s, t, method, path, body)
        lat.append(time.perf_counter() - t0)
        return out

    async with session(concurrency) as s:
        await timed(s, "PUT", "/traits/CUSTOM_BENCH_MAINTENANCE")
        pids = t.server.pids()
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()

        async def provider(i: int) -> None:
            u = rp_uuid(i)
            await timed(s, "POST", "/resource_providers", {"name": f"bench-{i:05d}", "uuid": u})
            await timed(s, "PUT", f"/resource_providers/{u}/inventories",
                        {"resource_provider_generation": 0, "inventories": world_inventory(i)})
            await timed(s, "PUT", f"/resource_providers/{u}/traits",
                        {"resource_provider_generation": 1, "traits": world_traits(i)})
            if world_aggregates(i):
                await timed(s, "PUT", f"/resource_providers/{u}/aggregates",
                            {"resource_provider_generation": 2,
                             "aggregates": world_aggregates(i)})

        def allocations(i: int) -> dict:
            body = claim_body(rp_uuid(i), 4, 8192 if i % 10 != 9 else 128, 100)
            return {str(uuid.uuid5(NS, f"consumer-{i}")): body}

        batches: list[list[int]] = []
        carrying = [i for i in range(n) if i % 2 == 1]     # half carry an allocation
        for k in range(0, len(carrying), ALLOCATION_BATCH):
            batches.append(carrying[k:k + ALLOCATION_BATCH])

        async def worker(k: int) -> None:
            for i in range(k, n, concurrency):
                await provider(i)

        async def alloc_worker(k: int) -> None:
            for b in range(k, len(batches), concurrency):
                body: dict = {}
                for i in batches[b]:
                    body.update(allocations(i))
                await timed(s, "POST", "/allocations", body)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        await asyncio.gather(*(alloc_worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pids) - cpu0
    return {"providers": n, "requests": len(lat), "seconds": round(elapsed, 2),
            "rps": round(len(lat) / elapsed, 1), **percentiles(lat),
            "server_cpu_ms_per_req": round(cpu * 1000 / len(lat), 2)}


def normal_candidates(body: dict) -> dict:
    reqs = sorted(json.dumps({rp: a["resources"] for rp, a in r["allocations"].items()},
                             sort_keys=True) for r in body["allocation_requests"])
    summaries = {rp: {"resources": v["resources"], "traits": sorted(v.get("traits", [])),
                      "parent": v.get("parent_provider_uuid"),
                      "root": v.get("root_provider_uuid")}
                 for rp, v in body["provider_summaries"].items()}
    return {"allocation_requests": reqs, "provider_summaries": summaries}


def normal_providers(body: dict) -> list:
    return sorted((p["uuid"], p["name"], p["generation"], p.get("parent_provider_uuid"),
                   p.get("root_provider_uuid")) for p in body["resource_providers"])


async def answers(t: Target) -> dict:
    """What each read workload returns, normalised for comparison (no limit)."""
    out: dict = {}
    async with session(4, timeout=900) as s:     # every candidate of a large world
        for name, path in candidate_queries(0).items():
            out[name] = normal_candidates(await must(s, t, "GET", path))
        out["providers"] = normal_providers(await must(s, t, "GET", "/resource_providers"))
        out["usages"] = await must(s, t, "GET", f"/usages?project_id={PROJECT}",
                                   headers=USAGES_HEADERS)
        out["rp_usages"] = {i: await must(s, t, "GET",
                                          f"/resource_providers/{rp_uuid(i)}/usages")
                            for i in range(10)}
    return out


def compare(a: dict, b: dict) -> dict:
    out = {}
    for key, mine in a.items():
        same = mine == b[key]
        entry: dict = {"same": same}
        if key.startswith("candidates"):
            entry["candidates"] = [len(mine["allocation_requests"]),
                                   len(b[key]["allocation_requests"])]
        if not same:
            entry["detail"] = diff_detail(mine, b[key])
        out[key] = entry
    return out


def diff_detail(a, b) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return f"{k}: {str(a.get(k))[:300]} != {str(b.get(k))[:300]}"
    return f"{str(a)[:300]} != {str(b)[:300]}"


# --------------------------------------------------------------------------
# load


def percentiles(lat: list[float]) -> dict:
    lat = sorted(lat)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

    return {"p50_ms": pct(0.50), "p99_ms": pct(0.99)}


@dataclass
class Tally:
    """What the client saw of one server for one workload, over all slices."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    others_cpu: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    slices_rps: list[float] = field(default_factory=list)

    def record(self, label: str, t0: float, ok: bool, status: int | str) -> None:
        if ok:
            self.requests += 1
            self.latencies.setdefault(label, []).append(time.perf_counter() - t0)
        else:
            key = f"{label} {status}"
            self.errors[key] = self.errors.get(key, 0) + 1

    def summary(self) -> dict:
        secs = max(self.seconds, 1e-9)
        out = {"requests": self.requests, "errors": self.errors,
               "seconds": round(self.seconds, 2), "rps": round(self.requests / secs, 1),
               "slices_rps": self.slices_rps,
               "server_cpu_ms_per_req": round(self.server_cpu * 1000 / max(1, self.requests),
                                              2),
               "server_cores_busy": round(self.server_cpu / secs, 2),
               "client_cores_busy": round(self.client_cpu / secs, 2),
               "other_cores_busy": round(max(0.0, self.others_cpu) / secs, 2)}
        labels = list(self.latencies)
        if len(labels) == 1:
            out.update(percentiles(self.latencies[labels[0]]))
        else:
            all_lat = [x for v in self.latencies.values() for x in v]
            out.update(percentiles(all_lat))
            out["by_request"] = {k: {"requests": len(v), **percentiles(v)}
                                 for k, v in self.latencies.items()}
        return out


def make_op(workload: str, n_providers: int, limit: int):
    """The coroutine one client runs once per iteration of a workload."""
    paths = candidate_queries(limit)
    paths["providers"] = "/resource_providers"
    paths["usages"] = f"/usages?project_id={PROJECT}"
    if workload in paths:
        path = paths[workload]
        headers = USAGES_HEADERS if workload == "usages" else None

        async def get(s, t, k: int, tally: Tally) -> None:
            t0 = time.perf_counter()
            status, _ = await call(s, t, "GET", path, headers=headers)
            tally.record("GET", t0, status == 200, status)
        return get

    async def claim(s, t, k: int, tally: Tally) -> None:
        # A new consumer claims on provider k (skipping the small ones), then goes away.
        i = k % n_providers
        if i % 10 == 9:
            i -= 1
        consumer = str(uuid.uuid4())
        t0 = time.perf_counter()
        status, _ = await call(s, t, "PUT", f"/allocations/{consumer}", claim_body(rp_uuid(i)))
        tally.record("PUT", t0, status == 204, status)
        if status != 204:
            return
        t0 = time.perf_counter()
        status, _ = await call(s, t, "DELETE", f"/allocations/{consumer}")
        tally.record("DELETE", t0, status == 204, status)
    return claim


WORKLOADS = ["candidates", "candidates_traits", "candidates_member_of", "claims",
             "providers", "usages"]


async def load(t: Target, op, duration: float, concurrency: int, tally: Tally | None,
               counter: list[int]) -> None:
    """`concurrency` clients loop for `duration` s, then the in-flight ones drain;
    every completed request counts, and the time includes the drain."""
    loop = asyncio.get_running_loop()
    pids = t.server.pids()
    scratch = tally or Tally()
    n0 = scratch.requests
    cpu0, client0, busy0 = cpu_seconds(pids), time.process_time(), machine_busy_seconds()
    async with session(concurrency) as s:
        stop_at = loop.time() + duration

        async def worker() -> None:
            while loop.time() < stop_at:
                counter[0] += 1
                try:
                    await op(s, t, counter[0], scratch)
                except (TimeoutError, aiohttp.ClientError) as e:
                    scratch.record("client", time.perf_counter(), False, type(e).__name__)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    if tally is None:
        return
    server_cpu = cpu_seconds(pids) - cpu0
    client_cpu = time.process_time() - client0
    tally.seconds += elapsed
    tally.server_cpu += server_cpu
    tally.client_cpu += client_cpu
    tally.others_cpu += machine_busy_seconds() - busy0 - server_cpu - client_cpu
    tally.slices_rps.append(round((tally.requests - n0) / elapsed, 1))


async def measure(targets: list[Target], args, seconds: float, warm_s: float, rounds: int,
                  settle_s: float) -> dict:
    out: dict[str, dict] = {t.name: {} for t in targets}
    log(f"building {args.providers} providers in {', '.join(t.name for t in targets)} "
        f"at once ({args.build_concurrency} clients each)")
    built = await asyncio.gather(*(build_world(t, args.providers, args.build_concurrency)
                                   for t in targets))
    for t, b in zip(targets, built):
        out[t.name]["build"] = b
        log(f"{t.name}: {b['requests']} writes in {b['seconds']} s = {b['rps']} req/s, "
            f"{b['server_cpu_ms_per_req']} ms CPU/req")
    seen = {t.name: await answers(t) for t in targets}
    if len(targets) == 2:
        cmp = compare(seen[targets[0].name], seen[targets[1].name])
        out["answers"] = cmp
        for k, v in cmp.items():
            log(f"same answer for {k}: {'yes' if v['same'] else 'NO'} "
                f"{v.get('candidates', '')} {v.get('detail', '')}")
    else:
        out["answers"] = {k: {"candidates": [len(v["allocation_requests"])]}
                          for k, v in seen[targets[0].name].items()
                          if k.startswith("candidates")}
    await asyncio.sleep(settle_s)
    for t in targets:
        out[t.name]["idle_memory"] = t.server.memory()
        m = out[t.name]["idle_memory"]
        log(f"{t.name}: idle RSS {m['rss_mb']} MB over {m['processes']} process(es), "
            f"PSS {m['pss_mb']} MB")
    counter = [0]
    for w in WORKLOADS:
        op = make_op(w, args.providers, args.limit)
        for t in targets:                  # unmeasured warm-up
            await load(t, op, warm_s, args.concurrency, None, counter)
        tallies = {t.name: Tally() for t in targets}
        for _ in range(rounds):
            for t in targets:
                await load(t, op, seconds / rounds, args.concurrency, tallies[t.name], counter)
        for name, tl in tallies.items():
            out[name][w] = tl.summary()
            sm = out[name][w]
            log(f"{name}: {w} {sm['rps']} req/s, p50 {sm['p50_ms']} ms, p99 {sm['p99_ms']} "
                f"ms, errors {sm['errors'] or 0}, slices {sm['slices_rps']}, other "
                f"processes {sm['other_cores_busy']} cores")
    await asyncio.sleep(settle_s)
    for t in targets:
        out[t.name]["memory_after_load"] = t.server.memory()
    return out


# --------------------------------------------------------------------------
# report


def adv(c: float | None, p: float | None, higher_better: bool) -> float | None:
    """How many times better cloudd is: >1 means cloudd wins."""
    if not c or not p:
        return None
    return round(c / p if higher_better else p / c, 2)


ROWS = [
    # label, getter, higher is better
    ("start, median (s)", lambda r: r["start_s"]["median"], False),
    ("one-off setup (s)", lambda r: r["setup_s"], False),
    ("idle RSS, summed (MB)", lambda r: r["idle_memory"]["rss_mb"], False),
    ("idle PSS, summed (MB)", lambda r: r["idle_memory"]["pss_mb"], False),
    ("processes", lambda r: r["idle_memory"]["processes"], None),
    ("build world, writes (req/s)", lambda r: r["build"]["rps"], True),
    ("build world, p50 (ms)", lambda r: r["build"]["p50_ms"], False),
]
for _w, _label in (("candidates", "a_c plain"), ("candidates_traits", "a_c traits"),
                   ("candidates_member_of", "a_c member_of"), ("providers", "GET /rps"),
                   ("usages", "GET /usages")):
    ROWS += [(f"{_label} (req/s)", lambda r, w=_w: r[w]["rps"], True),
             (f"{_label} p50 (ms)", lambda r, w=_w: r[w]["p50_ms"], False),
             (f"{_label} p99 (ms)", lambda r, w=_w: r[w]["p99_ms"], False),
             (f"{_label} CPU/req (ms)", lambda r, w=_w: r[w]["server_cpu_ms_per_req"], False)]
ROWS += [
    ("claim PUT+DELETE (req/s)", lambda r: r["claims"]["rps"], True),
    ("claim PUT p50 (ms)", lambda r: r["claims"]["by_request"]["PUT"]["p50_ms"], False),
    ("claim PUT p99 (ms)", lambda r: r["claims"]["by_request"]["PUT"]["p99_ms"], False),
    ("claim DELETE p50 (ms)", lambda r: r["claims"]["by_request"]["DELETE"]["p50_ms"], False),
    ("claim DELETE p99 (ms)", lambda r: r["claims"]["by_request"]["DELETE"]["p99_ms"], False),
    ("claim CPU/req (ms)", lambda r: r["claims"]["server_cpu_ms_per_req"], False),
    ("RSS after load (MB)", lambda r: r["memory_after_load"]["rss_mb"], False),
]


def table(results: dict, markdown: bool = False) -> str:
    c, p = results["cloudd"], results.get("placement")
    cells = []
    for label, get, higher in ROWS:
        try:
            cv = get(c)
        except (KeyError, TypeError):
            cv = None
        try:
            pv = get(p) if p else None
        except (KeyError, TypeError):
            pv = None
        a = adv(cv, pv, higher) if higher is not None else None
        how = "" if higher is None else ("cloudd/placement" if higher else "placement/cloudd")
        cells.append((label, "-" if cv is None else cv, "-" if pv is None else pv,
                      "-" if a is None else a, how))
    if markdown:
        lines = ["| metric | cloudd | placement | cloudd better by | ratio |",
                 "| --- | ---: | ---: | ---: | --- |"]
        lines += [f"| {a} | {b} | {c_} | {d}{'x' if d != '-' else ''} | {e} |"
                  for a, b, c_, d, e in cells]
    else:
        lines = [f"{'metric':30} {'cloudd':>10} {'placement':>10} {'better by':>10}  ratio"]
        lines += [f"{a:30} {b!s:>10} {c_!s:>10} {d!s:>10}  {e}" for a, b, c_, d, e in cells]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter load, fewer restarts")
    ap.add_argument("--providers", type=int, default=200, help="resource providers (200)")
    ap.add_argument("--limit", type=int, default=1000,
                    help="allocation_candidates limit (Nova's max_placement_results, 1000)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--build-concurrency", type=int, default=32,
                    help="clients per server while building the world (both at once)")
    ap.add_argument("--seconds", type=float, help="measured seconds per workload and server "
                                                  "(default 10, quick 3)")
    ap.add_argument("--runs", type=int, help="measured restarts per server (default 5, "
                                             "quick 1)")
    ap.add_argument("--db", choices=["postgresql", "sqlite"],
                    help="database for both (default postgresql when initdb is found)")
    ap.add_argument("--placement-venv", type=Path, default=BENCH / ".placement-venv")
    ap.add_argument("--placement-workers", type=int,
                    default=max(2, len(os.sched_getaffinity(0)) // 4))
    ap.add_argument("--no-placement", action="store_true", help="measure cloudd only")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS for the machine to be idle")
    ap.add_argument("--json", type=Path, default=BENCH / "placement-results.json")
    args = ap.parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warm_s = 0.5 if args.quick else 1.0
    rounds = 2
    settle_s = 1.0 if args.quick else 2.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()

    pg = None
    db = args.db or "postgresql"
    if db == "postgresql":
        try:
            from cloudd.testing.postgres import PostgresUnavailable, _bindir
            _bindir()
        except (ImportError, PostgresUnavailable) as e:
            if args.db:
                raise SystemExit(f"PostgreSQL is not available: {e}") from None
            db = "sqlite"

    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    waited = time.perf_counter() - started
    results: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([".venv/bin/python", "bench/placement.py", *sys.argv[1:]]),
        "machine": machine(), "cloudd_commit": commit(),
        "settings": {"providers": args.providers, "concurrency": args.concurrency,
                     "build_concurrency": args.build_concurrency,
                     "seconds_per_workload": seconds, "slices_per_server": rounds,
                     "warm_up_seconds": warm_s, "restarts": runs, "limit": args.limit,
                     "microversion": MICROVERSION, "database": db,
                     "usages_microversion": USAGES_MICROVERSION,
                     "placement_workers": args.placement_workers,
                     "resources": RESOURCES}}
    results["machine"]["loadavg_at_start"] = os.getloadavg()
    busy = other_load()
    results["machine"]["other_load_at_start_cores"] = busy
    log(f"load average {os.getloadavg()}, other processes {busy} cores busy; database {db}")
    if busy > 0.2:
        log(f"WARNING: other processes keep {busy} cores busy; figures will be noisy")
    work = Path(tempfile.mkdtemp(prefix="cloudd-bench-placement-"))
    targets: list[Target] = []
    try:
        compile_tree(sys.executable, site_packages(Path(sys.prefix)))
        cloudd_db = placement_db = ""
        if db == "postgresql":
            from cloudd.testing.postgres import PostgresServer
            pg = PostgresServer().start()
            cloudd_db = pg.create_database("cloudd")
            placement_db = pg.create_database("placement").replace("+asyncpg", "+psycopg2")
            results["settings"]["postgresql"] = subprocess.run(
                [str(pg.bindir / "postgres"), "--version"], check=False, capture_output=True,
                text=True).stdout.strip()
        else:
            placement_db = f"sqlite:///{work}/placement/placement.db"
        log("bootstrapping cloudd")
        targets.append(prepare_cloudd(work / "cloudd", cloudd_db))
        if args.no_placement:
            results["placement_unavailable"] = "skipped with --no-placement"
        else:
            try:
                ensure_placement_venv(args.placement_venv)
                log("setting up openstack-placement (placement-manage db sync)")
                targets.append(prepare_placement(args.placement_venv, work / "placement",
                                                 args.placement_workers, placement_db))
            except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                results["placement_unavailable"] = str(e)
                log(f"WARNING: openstack-placement could not be set up: {e}")

        log(f"start times: {runs} alternating restarts each (after one unmeasured)")
        b0, t0, own0 = machine_busy_seconds(), time.perf_counter(), own_cpu_seconds()
        times = cold_starts(targets, runs) if runs else {t.name: [] for t in targets}
        others = machine_busy_seconds() - b0 - (own_cpu_seconds() - own0)
        results["settings"]["other_cores_busy_during_starts"] = round(
            max(0.0, others) / (time.perf_counter() - t0), 2)
        for t in targets:
            t.server.start()
            v = times[t.name] or [0.0]
            results[t.name] = {
                "versions": t.versions, "notes": t.notes, "setup_s": round(t.setup_s, 3),
                "start_s": {"median": round(statistics.median(v), 3), "min": round(min(v), 3),
                            "max": round(max(v), 3), "runs": [round(x, 3) for x in v]}}
        running = asyncio.run(measure(targets, args, seconds, warm_s, rounds, settle_s))
        results["answers"] = running.pop("answers")
        for name, figures in running.items():
            results[name].update(figures)
    finally:
        for t in targets:
            t.server.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    c, p = results["cloudd"], results.get("placement")
    if p:
        results["cloudd_better_by"] = {
            label: adv(get(c), get(p), higher) for label, get, higher in ROWS
            if higher is not None}
        results["same_answers"] = all(v["same"] for v in results["answers"].values())
    results["waited_for_idle_s"] = round(waited, 1)
    results["bench_seconds"] = round(time.perf_counter() - started - waited, 1)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(table(results, markdown=True) + "\n")

    m = results["machine"]
    print()
    print(f"{results['date']}  {m['nproc']} CPU {m['cpu']}, {m['memory_gb']} GB, Python "
          f"{m['python']}; {db}; {args.providers} providers; {args.concurrency} clients; "
          f"load average at start {' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}")
    print("'better by': cloudd/placement for rates, placement/cloudd for times and memory; "
          ">1 means cloudd is better")
    print(table(results))
    if p:
        print(f"same answers from both: {'yes' if results['same_answers'] else 'NO'}")
    else:
        print(f"(no openstack-placement figures: {results.get('placement_unavailable')})")
    print(f"results in {args.json} (and {args.json.with_suffix('.md').name}); "
          f"whole run {results['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
