#!/usr/bin/env python
"""cloudd against OpenStack Keystone, side by side in one run.

    .venv/bin/python bench/run.py [--quick]

Measures, for cloudd (SQLite, a fresh temporary data directory) and for the
reference, Keystone from PyPI served by gunicorn (SQLite, Fernet tokens):

1. cold start: process start to the first HTTP 200 (cloudd: ``/healthz``,
   Keystone: ``/v3``), median of N restarts of an already bootstrapped server;
2. idle RSS after bootstrap: VmRSS (and PSS) of the server's processes, summed,
   once it has served a few requests and settled (also: its anonymous part, and
   VmRSS once ready but before any request);
3. token issue and validate throughput: a bounded concurrent aiohttp client
   doing ``POST /v3/auth/tokens`` (password, project-scoped, bootstrap admin)
   and ``GET /v3/auth/tokens`` for a fixed time each, in short slices that
   alternate between the servers; requests/s, latency, the server's CPU time
   per request, and how busy other processes kept the machine meanwhile.

Both use bcrypt with cost 12 for passwords. Keystone is installed into its own
venv (``bench/.keystone-venv`` by default, gitignored) on first use; later runs
reuse it. Both venvs and cloudd's sources are byte-compiled before measuring
(``PYTHONDONTWRITEBYTECODE=1`` is set on the dev machines, so without this the
cloudd modules would be compiled on every start). Results go to the terminal
and to ``bench/results.json``; ``docs/benchmarks.md`` carries the figures.
Timings are not tests: nothing here fails on a slow figure.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import grp
import http.client
import importlib.metadata
import json
import os
import platform
import pwd
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KEYSTONE_REQUIREMENTS = ["keystone==30.0.0", "gunicorn==27.0.1"]
BCRYPT_ROUNDS = 12
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLOUDD_", "OS_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# processes


def descendants(pid: int) -> list[int]:
    """pid and every process below it (gunicorn's workers, say)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kb(pid: int) -> tuple[int, int, int]:
    """(VmRSS, Pss, anonymous) in kB for one process. What is not anonymous is
    file-backed: the mapped pages of shared libraries and extension modules."""
    rss = pss = anon = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("RssAnon:"):
            anon = int(line.split()[1])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pss = rss
    return rss, pss, anon


def machine_busy_seconds() -> float:
    """CPU-seconds spent busy on the whole machine since boot (all CPUs)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def other_load(seconds: float = 1.0) -> float:
    """Cores kept busy by everything else on the machine, sampled now."""
    b0, c0 = machine_busy_seconds(), time.process_time()
    time.sleep(seconds)
    return round((machine_busy_seconds() - b0 - (time.process_time() - c0)) / seconds, 2)


def own_cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the stopped servers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(limit: float) -> None:
    deadline, streak = time.monotonic() + limit, 0
    log(f"waiting up to {limit:.0f}s for the machine to be idle")
    while time.monotonic() < deadline:
        streak = streak + 1 if other_load(2.0) < 0.15 else 0
        if streak >= 5:
            return
    log("the machine did not go idle; measuring anyway")


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime + stime
    return total / tick


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    health_path: str
    log_path: Path
    cwd: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 90.0) -> float:
        """Start; return seconds from spawning to the first 200 on the health path."""
        with open(self.log_path, "ab") as logf:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"log:\n{self.log_tail()}")
            now = time.perf_counter()
            if now > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} gave no 200 on {self.health_path} in "
                                   f"{timeout}s; log:\n{self.log_tail()}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=max(0.1, deadline - now))
            try:
                conn.request("GET", self.health_path)
                status = conn.getresponse().status
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.005)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in reversed(descendants(self.proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait()
        self.proc = None

    def pids(self) -> list[int]:
        assert self.proc is not None
        return descendants(self.proc.pid)

    def memory(self) -> dict:
        per = []
        for pid in self.pids():
            try:
                rss, pss, anon = memory_kb(pid)
            except OSError:
                continue
            per.append({"pid": pid, "rss_kb": rss, "pss_kb": pss, "anon_kb": anon})
        return {"processes": len(per),
                "rss_mb": round(sum(p["rss_kb"] for p in per) / 1024, 1),
                "pss_mb": round(sum(p["pss_kb"] for p in per) / 1024, 1),
                "anon_mb": round(sum(p["anon_kb"] for p in per) / 1024, 1),
                "per_process_rss_mb": [round(p["rss_kb"] / 1024, 1) for p in per]}

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


@dataclass
class Target:
    """A server plus what the load client needs to talk to it."""

    server: Server
    identity_url: str            # .../v3
    auth_body: dict
    setup_s: float = 0.0         # first start with bootstrap (cloudd) / manage steps (Keystone)
    versions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def password_body(user: str, password: str, project: str) -> dict:
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}


# --------------------------------------------------------------------------
# preparation


def compile_tree(python: str, paths: list[Path]) -> None:
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", *map(str, paths)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def site_packages(venv: Path) -> list[Path]:
    return sorted((venv / "lib").glob("python*/site-packages"))


def dist_version(python: str, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    out = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True)
    return out.stdout.strip() or "?"


def ensure_keystone_venv(venv: Path) -> None:
    """Create the Keystone venv if it is missing or stale; idempotent."""
    marker = venv / ".bench-installed"
    want = "\n".join(KEYSTONE_REQUIREMENTS) + "\n"
    if marker.exists() and marker.read_text() == want and (venv / "bin" / "gunicorn").exists():
        return
    log(f"installing {' '.join(KEYSTONE_REQUIREMENTS)} into {venv} (once; about a minute)")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", *KEYSTONE_REQUIREMENTS], check=True)
    compile_tree(py, site_packages(venv))
    marker.write_text(want)


def current_user_group() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


KEYSTONE_CONF = """\
[DEFAULT]
log_file = {work}/keystone.log
use_stderr = false

[database]
connection = sqlite:///{work}/keystone.db

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = {work}/fernet-keys
max_active_keys = 3

[fernet_receipts]
key_repository = {work}/fernet-keys

[credential]
key_repository = {work}/credential-keys

[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = {rounds}
{cache}"""

# DevStack turns Keystone's cache on (with memcached). An in-process dogpile
# memory cache per worker is the nearest thing without a memcached daemon, and
# if anything it flatters Keystone (no network hop).
KEYSTONE_CACHE = """
[cache]
enabled = true
backend = dogpile.cache.memory
"""

# oslo.config parses sys.argv, which under gunicorn holds gunicorn's own flags;
# uwsgi (DevStack's server) does not have the problem. Hide them from Keystone.
KEYSTONE_WSGI = """\
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
"""


def prepare_keystone(venv: Path, work: Path, workers: int, cache: bool) -> Target:
    work.mkdir(parents=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    (work / "keystone.conf").write_text(KEYSTONE_CONF.format(
        work=work, rounds=BCRYPT_ROUNDS, cache=KEYSTONE_CACHE if cache else ""))
    (work / "ks_wsgi.py").write_text(KEYSTONE_WSGI)
    env = clean_env({"OS_KEYSTONE_CONFIG_DIR": str(work),
                     "OS_KEYSTONE_CONFIG_FILES": "keystone.conf"})
    manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(work / "keystone.conf")]
    user, group = current_user_group()
    password = secrets.token_urlsafe(18)
    t0 = time.perf_counter()
    with open(work / "manage.log", "ab") as out:
        for args in (["db_sync"],
                     ["fernet_setup", "--keystone-user", user, "--keystone-group", group],
                     ["credential_setup", "--keystone-user", user, "--keystone-group", group],
                     ["bootstrap", "--bootstrap-password", password,
                      "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                      "--bootstrap-admin-url", f"{url}/v3", "--bootstrap-public-url",
                      f"{url}/v3", "--bootstrap-internal-url", f"{url}/v3",
                      "--bootstrap-region-id", "RegionOne"]):
            r = subprocess.run(manage + args, check=False, env=env, cwd=work, stdout=out,
                               stderr=subprocess.STDOUT)
            if r.returncode:
                raise RuntimeError(f"keystone-manage {args[0]} failed; see {work}/manage.log")
    setup_s = time.perf_counter() - t0
    cmd = [str(venv / "bin" / "gunicorn"), "--chdir", str(work), "--workers", str(workers),
           "--worker-class", "sync", "--bind", f"{HOST}:{port}", "ks_wsgi:application"]
    server = Server("keystone", cmd, env, port, "/v3", work / "gunicorn.log", work)
    py = str(venv / "bin" / "python")
    target = Target(server, f"{url}/v3", password_body("admin", password, "admin"), setup_s)
    target.versions = {n: dist_version(py, n) for n in
                       ("keystone", "gunicorn", "bcrypt", "SQLAlchemy", "cryptography")}
    target.versions["python"] = subprocess.run(
        [py, "-c", "import platform; print(platform.python_version())"],
        check=False, capture_output=True, text=True).stdout.strip()
    target.notes.append(f"gunicorn, {workers} sync workers (DevStack runs max(2, nproc/4) "
                        "uwsgi processes); RSS/PSS summed over master + workers")
    target.notes.append("[cache] enabled with backend dogpile.cache.memory (per worker; "
                        "DevStack uses memcached)" if cache else
                        "[cache] off (Keystone's default; DevStack turns it on)")
    return target


def prepare_cloudd(work: Path) -> Target:
    import cloudd
    compile_tree(sys.executable, [Path(cloudd.__file__).parent])
    data = work / "data"
    port = free_port()
    exe = Path(sys.executable).parent / "cloudd"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "cloudd"]
    cmd = base + ["--data-dir", str(data), "serve", "--listen", f"{HOST}:{port}"]
    env = clean_env({"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": str(BCRYPT_ROUNDS)})
    work.mkdir(parents=True, exist_ok=True)
    server = Server("cloudd", cmd, env, port, "/healthz", work / "serve.log", work)
    setup_s = server.start()          # first start: creates the schema, keys, admin
    server.stop()
    auth = yaml.safe_load((data / "clouds.yaml").read_text())["clouds"]["cloudd"]["auth"]
    target = Target(server, f"{server.url}/identity/v3",
                    password_body(auth["username"], auth["password"], auth["project_name"]),
                    setup_s)
    target.versions = {n: importlib.metadata.version(n) for n in
                       ("cloudd", "aiohttp", "bcrypt", "SQLAlchemy", "cryptography")}
    target.versions["python"] = platform.python_version()
    target.notes.append("one process (aiohttp + uvloop); bcrypt runs in worker threads")
    return target


# --------------------------------------------------------------------------
# measurements


def cold_starts(targets: list[Target], runs: int) -> dict[str, list[float]]:
    """Alternate the servers so that drift on the machine hits both alike."""
    times: dict[str, list[float]] = {t.server.name: [] for t in targets}
    for t in targets:                  # one unmeasured start each: page cache, pyc
        t.server.start()
        t.server.stop()
    for i in range(runs):
        for t in targets:
            s = t.server.start()
            t.server.stop()
            times[t.server.name].append(s)
            time.sleep(0.2)
        done = ", ".join(f"{n} {v[-1]:.3f}s" for n, v in times.items())
        log(f"cold start run {i + 1}/{runs}: {done}")
    return times


async def issue(session: aiohttp.ClientSession, t: Target) -> tuple[int, str | None]:
    async with session.post(f"{t.identity_url}/auth/tokens", json=t.auth_body) as r:
        await r.read()
        return r.status, r.headers.get("X-Subject-Token")


async def validate(session: aiohttp.ClientSession, t: Target, admin: str,
                   subject: str) -> int:
    async with session.get(f"{t.identity_url}/auth/tokens",
                           headers={"X-Auth-Token": admin, "X-Subject-Token": subject}) as r:
        await r.read()
        return r.status


async def warm_up(t: Target) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        for _ in range(3):
            status, tok = await issue(s, t)
            if status != 201 or not tok:
                raise RuntimeError(f"{t.server.name}: token issue gave {status}")
            if await validate(s, t, tok, tok) != 200:
                raise RuntimeError(f"{t.server.name}: token validate failed")
        async with s.get(t.identity_url) as r:
            await r.read()


@dataclass
class Tally:
    """What the load client saw of one server for one kind of request, over all slices."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    others_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    slices_rps: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else 0.0

        secs = max(self.seconds, 1e-9)
        return {"requests": self.requests, "errors": self.errors,
                "seconds": round(self.seconds, 2), "rps": round(self.requests / secs, 2),
                "slices_rps": self.slices_rps, "p50_ms": pct(0.50), "p95_ms": pct(0.95),
                "server_cpu_ms_per_req": round(self.server_cpu * 1000 / max(1, self.requests),
                                               2),
                "server_cores_busy": round(self.server_cpu / secs, 2),
                "client_cores_busy": round(self.client_cpu / secs, 2),
                "other_cores_busy": round(max(0.0, self.others_cpu) / secs, 2)}


async def load(t: Target, kind: str, duration: float, concurrency: int,
               tokens: list[str], tally: Tally) -> None:
    """`concurrency` clients in a loop for `duration` seconds, then the in-flight
    requests drain; every completed request counts, and the time includes the drain."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    pids = t.server.pids()
    issued: list[str] = []
    n0 = tally.requests
    cpu0, client0, busy0 = cpu_seconds(pids), time.process_time(), machine_busy_seconds()
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as s:
        stop_at = loop.time() + duration

        async def worker(i: int) -> None:
            n = i
            while loop.time() < stop_at:
                t0 = time.perf_counter()
                try:
                    if kind == "issue":
                        status, tok = await issue(s, t)
                        ok = status == 201
                        if ok and tok and len(tokens) + len(issued) < 256:
                            issued.append(tok)
                    else:
                        subject = tokens[n % len(tokens)]
                        n += concurrency
                        status = await validate(s, t, tokens[0], subject)
                        ok = status == 200
                except (TimeoutError, aiohttp.ClientError) as e:
                    ok, status = False, type(e).__name__
                if ok:
                    tally.requests += 1
                    tally.latencies.append(time.perf_counter() - t0)
                else:
                    tally.errors[str(status)] = tally.errors.get(str(status), 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    server_cpu = cpu_seconds(pids) - cpu0
    client_cpu = time.process_time() - client0
    tally.seconds += elapsed
    tally.server_cpu += server_cpu
    tally.client_cpu += client_cpu
    tally.others_cpu += machine_busy_seconds() - busy0 - server_cpu - client_cpu
    tally.slices_rps.append(round((tally.requests - n0) / elapsed, 2))
    tokens.extend(issued)


async def measure_running(targets: list[Target], issue_s: float, validate_s: float,
                          concurrency: int, settle_s: float, rounds: int) -> dict:
    """Idle memory, then issue and validate load in short slices that alternate
    between the servers, so that whatever else the machine does hits both alike."""
    out: dict[str, dict] = {}
    await asyncio.sleep(settle_s)
    for t in targets:                  # ready (/healthz answered), no request served yet
        out[t.server.name] = {"memory_before_requests": t.server.memory()}
    for t in targets:
        await warm_up(t)
    await asyncio.sleep(settle_s)
    for t in targets:
        idle = t.server.memory()
        out[t.server.name]["idle_memory"] = idle
        log(f"{t.server.name}: idle RSS {idle['rss_mb']} MB over {idle['processes']} "
            f"process(es), PSS {idle['pss_mb']} MB")
    tokens: dict[str, list[str]] = {t.server.name: [] for t in targets}
    for kind, total in (("issue", issue_s), ("validate", validate_s)):
        tallies = {t.server.name: Tally() for t in targets}
        for r in range(rounds):
            for t in targets:
                if kind == "validate" and not tokens[t.server.name]:
                    raise RuntimeError(f"{t.server.name}: no token was issued under load")
                await load(t, kind, total / rounds, concurrency, tokens[t.server.name],
                           tallies[t.server.name])
            log(f"{kind} round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {tl.slices_rps[-1]} req/s" for n, tl in tallies.items()))
        for name, tl in tallies.items():
            out[name][kind] = tl.summary()
            sm = out[name][kind]
            log(f"{name}: {kind} {sm['rps']} req/s (p50 {sm['p50_ms']} ms, errors "
                f"{sm['errors']}, other processes {sm['other_cores_busy']} cores)")
    await asyncio.sleep(settle_s)
    for t in targets:
        out[t.server.name]["memory_after_load"] = t.server.memory()
    return out


# --------------------------------------------------------------------------
# report


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu,
            "memory_gb": round(mem_kb / 1024 / 1024, 1), "kernel": platform.release(),
            "python": platform.python_version()}


def commit() -> str:
    """The checked-out commit, read from .git without running git."""
    try:
        git = ROOT / ".git"
        if git.is_file():                                  # a worktree: "gitdir: ..."
            git = (ROOT / git.read_text().split(":", 1)[1].strip()).resolve()
        common = git
        if (git / "commondir").exists():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12]
        ref = head.split(None, 1)[1]
        for base in (git, common):
            if (base / ref).exists():
                return (base / ref).read_text().strip()[:12]
        packed = common / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0][:12]
    except (OSError, IndexError):
        pass
    return "unknown"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def table(results: dict, markdown: bool = False) -> str:
    c, k = results["cloudd"], results.get("keystone")
    rows = [
        ("cold start, median (s)", lambda r: r["cold_start_s"]["median"], "lower"),
        ("cold start, min (s)", lambda r: r["cold_start_s"]["min"], "lower"),
        ("idle RSS, summed (MB)", lambda r: r["idle_memory"]["rss_mb"], "lower"),
        ("idle PSS, summed (MB)", lambda r: r["idle_memory"]["pss_mb"], "lower"),
        ("idle RSS, anonymous part (MB)", lambda r: r["idle_memory"]["anon_mb"], "lower"),
        ("RSS before any request (MB)",
         lambda r: r["memory_before_requests"]["rss_mb"], "lower"),
        ("processes", lambda r: r["idle_memory"]["processes"], ""),
        ("token issue (req/s)", lambda r: r["issue"]["rps"], "higher"),
        ("token issue p50 (ms)", lambda r: r["issue"]["p50_ms"], "lower"),
        ("issue server CPU/req (ms)", lambda r: r["issue"]["server_cpu_ms_per_req"], "lower"),
        ("token validate (req/s)", lambda r: r["validate"]["rps"], "higher"),
        ("validate p50 (ms)", lambda r: r["validate"]["p50_ms"], "lower"),
        ("validate server CPU/req (ms)",
         lambda r: r["validate"]["server_cpu_ms_per_req"], "lower"),
        ("RSS after load, summed (MB)", lambda r: r["memory_after_load"]["rss_mb"], "lower"),
        ("other procs' cores, issue", lambda r: r["issue"]["other_cores_busy"], ""),
        ("other procs' cores, validate", lambda r: r["validate"]["other_cores_busy"], ""),
    ]
    cells = []
    for label, get, better in rows:
        cv = get(c)
        kv = get(k) if k else None
        rv = (ratio(cv, kv) or "-") if kv and better else "-"
        cells.append((label, cv, "-" if kv is None else kv, rv, better))
    if markdown:
        lines = ["| metric | cloudd | Keystone | cloudd/Keystone | better |",
                 "| --- | ---: | ---: | ---: | --- |"]
        lines += [f"| {a} | {b} | {c_} | {d} | {e} |" for a, b, c_, d, e in cells]
    else:
        lines = [f"{'metric':32} {'cloudd':>10} {'keystone':>10} {'cloudd/ks':>10}  better"]
        lines += [f"{a:32} {b:>10} {c_:>10} {d:>10}  {e}" for a, b, c_, d, e in cells]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs, shorter load phases")
    ap.add_argument("--runs", type=int, help="cold starts per server (default 7, quick 3)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--issue-seconds", type=float, help="default 15, quick 5")
    ap.add_argument("--validate-seconds", type=float, help="default 10, quick 4")
    ap.add_argument("--keystone-venv", type=Path, default=BENCH / ".keystone-venv")
    ap.add_argument("--keystone-workers", type=int,
                    default=max(2, len(os.sched_getaffinity(0)) // 4))
    ap.add_argument("--keystone-cache", choices=["memory", "none"], default="memory",
                    help="Keystone's [cache]: in-process dogpile memory (default) or off")
    ap.add_argument("--no-keystone", action="store_true", help="measure cloudd only")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS for other processes to leave the "
                         "CPUs idle (10 s under 0.15 cores busy)")
    ap.add_argument("--json", type=Path, default=BENCH / "results.json")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    issue_s = args.issue_seconds or (5.0 if args.quick else 15.0)
    validate_s = args.validate_seconds or (4.0 if args.quick else 10.0)
    settle_s = 1.0 if args.quick else 2.0
    rounds = 2 if args.quick else 3
    # SIGTERM as well as Ctrl-C leaves through the finally below, which stops the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()

    results: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "machine": machine(), "cloudd_commit": commit(),
        "settings": {"cold_start_runs": runs, "concurrency": args.concurrency,
                     "issue_seconds": issue_s, "validate_seconds": validate_s,
                     "load_slices_per_server": rounds,
                     "bcrypt_rounds": BCRYPT_ROUNDS, "database": "SQLite (both)",
                     "keystone_workers": args.keystone_workers,
                     "keystone_cache": args.keystone_cache,
                     "precompiled": "python -m compileall -q over cloudd/ and the "
                                    "Keystone venv's site-packages (pip compiles the rest)"}}

    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    waited = time.perf_counter() - started
    results["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    busy = other_load()
    results["machine"]["other_load_at_start_cores"] = busy
    if busy > 0.2:
        log(f"WARNING: other processes keep {busy} cores busy; figures will be noisy")
    work = Path(tempfile.mkdtemp(prefix="cloudd-bench-"))
    targets: list[Target] = []
    try:
        compile_tree(sys.executable, site_packages(Path(sys.prefix)))
        log("bootstrapping cloudd")
        targets.append(prepare_cloudd(work / "cloudd"))
        if args.no_keystone:
            results["keystone_unavailable"] = "skipped with --no-keystone"
        else:
            try:
                ensure_keystone_venv(args.keystone_venv)
                log("setting up Keystone (db_sync, fernet_setup, bootstrap)")
                targets.append(prepare_keystone(args.keystone_venv, work / "keystone",
                                                args.keystone_workers,
                                                args.keystone_cache == "memory"))
            except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
                results["keystone_unavailable"] = str(e)
                log(f"WARNING: Keystone could not be set up, measuring cloudd alone: {e}")

        log(f"cold starts: {runs} alternating restarts each")
        b0, t0, own0 = machine_busy_seconds(), time.perf_counter(), own_cpu_seconds()
        times = cold_starts(targets, runs)
        others = machine_busy_seconds() - b0 - (own_cpu_seconds() - own0)
        results["settings"]["other_cores_busy_during_cold_starts"] = round(
            max(0.0, others) / (time.perf_counter() - t0), 2)
        for t in targets:
            v = times[t.server.name]
            results[t.server.name] = {
                "versions": t.versions, "notes": t.notes, "setup_s": round(t.setup_s, 3),
                "cold_start_s": {"median": round(statistics.median(v), 3),
                                 "min": round(min(v), 3), "max": round(max(v), 3),
                                 "runs": [round(x, 3) for x in v]}}
        log(f"idle memory, then token throughput ({args.concurrency} concurrent clients, "
            f"{rounds} alternating slices per server)")
        for t in targets:
            t.server.start()
        running = asyncio.run(measure_running(targets, issue_s, validate_s,
                                              args.concurrency, settle_s, rounds))
        for name, figures in running.items():
            results[name].update(figures)
    finally:
        for t in targets:
            t.server.stop()
    shutil.rmtree(work, ignore_errors=True)

    c, k = results["cloudd"], results.get("keystone")
    if k:
        results["ratios_cloudd_over_keystone"] = {
            "cold_start_median": ratio(c["cold_start_s"]["median"], k["cold_start_s"]["median"]),
            "idle_rss": ratio(c["idle_memory"]["rss_mb"], k["idle_memory"]["rss_mb"]),
            "idle_pss": ratio(c["idle_memory"]["pss_mb"], k["idle_memory"]["pss_mb"]),
            "issue_rps": ratio(c["issue"]["rps"], k["issue"]["rps"]),
            "validate_rps": ratio(c["validate"]["rps"], k["validate"]["rps"])}
    results["targets"] = {
        "cold_start_under_1.5s": c["cold_start_s"]["median"] < 1.5,
        "idle_rss_under_80MB": c["idle_memory"]["rss_mb"] < 80}
    results["waited_for_idle_s"] = round(waited, 1)
    results["bench_seconds"] = round(time.perf_counter() - started - waited, 1)
    args.json.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    print()
    print(f"{results['date']}  {m['nproc']} CPU {m['cpu']}, {m['memory_gb']} GB, "
          f"Python {m['python']}; bcrypt cost {BCRYPT_ROUNDS}; "
          f"{args.concurrency} concurrent clients")
    print(table(results))
    if not k:
        print(f"(no Keystone figures: {results.get('keystone_unavailable')})")
    tg = results["targets"]
    print(f"targets: cold start < 1.5 s: {'met' if tg['cold_start_under_1.5s'] else 'MISSED'}; "
          f"idle RSS < 80 MB: {'met' if tg['idle_rss_under_80MB'] else 'MISSED'}")
    args.json.with_suffix(".md").write_text(table(results, markdown=True) + "\n")
    print(f"results in {args.json} (and a markdown table in "
          f"{args.json.with_suffix('.md').name}); whole run {results['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
