"""cloudd's gabbi fixtures for Placement's own gabbi files.

One class per fixture name the YAML files use, as in Placement's
``placement/tests/functional/fixtures/gabbits.py``: same environment variables,
same providers, inventories, traits, aggregates and allocations. The code is
ours: each fixture starts a real ``cloudd serve`` (fresh data directory, fresh
database) with ``[auth] strategy = noauth2`` and Placement on a listener of its
own, then seeds through Placement's HTTP API as the admin (never into the
database).

The backend and the listener port are not known to gabbi, which instantiates
fixture classes without arguments; :class:`FixtureSet` hands gabbi per-file
subclasses that carry them (see ``test_gabbits.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import requests
from gabbi import fixture

from cloudd.testing.process import DIRECT, CloudProcess

# ---------------------------------------------------------------------------
# Ports. cloudd needs its ports before it starts, and a port found free and
# let go is up for grabs (another cloud starting in parallel, another test run)
# for the second cloudd takes to bind it. So a port is held by a socket that is
# bound with SO_REUSEADDR but never listens: the kernel hands it to no one else,
# yet cloudd (whose listeners set SO_REUSEADDR) can bind it and listen. The
# reservation is let go once cloudd listens. Placement's port is reserved at
# collection time, one per YAML file and backend (gabbi needs it to build the
# tests); the main port when the cloud starts.


class PortReservation:
    def __init__(self) -> None:
        self._sock: socket.socket | None = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ---------------------------------------------------------------------------
# The throwaway PostgreSQL server, started on first use and stopped at the end
# of the session (tests/placement/conftest.py) or at exit.

_PG = None
_PG_LOCK = threading.Lock()


def postgres():
    global _PG
    with _PG_LOCK:
        if _PG is None:
            from cloudd.testing.postgres import PostgresServer
            _PG = PostgresServer().start()
            atexit.register(stop_postgres)
        return _PG


def stop_postgres() -> None:
    global _PG
    with _PG_LOCK:
        if _PG is not None:
            _PG.stop()
            _PG = None


def postgres_available() -> str | None:
    """None when PostgreSQL's server binaries are here, else why not."""
    from cloudd.testing.postgres import PostgresUnavailable, _bindir
    try:
        _bindir()
    except PostgresUnavailable as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------
# Starting clouds ahead of time. Starting and seeding a cloud takes far longer
# than running a file's tests, so while one file runs, the next files' clouds
# start in threads (each its own `cloudd serve`, its own database). The plan
# is the order in which the selected tests will run (conftest.py sets it).


class Prefetcher:
    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.plan: list[tuple[str, type]] = []   # (suite key, fixture class)
        self._pool = None
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def set_plan(self, plan: list[tuple[str, type]]) -> None:
        self.plan = plan

    def advance(self, key: str) -> None:
        """The suite ``key`` starts now: have the next ones start meanwhile."""
        if self.ahead <= 0:
            return
        keys = [k for k, _ in self.plan]
        if key not in keys:
            return
        at = keys.index(key)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="gabbi-prep")
            for next_key, cls in self.plan[at + 1:at + 1 + self.ahead]:
                if next_key not in self._futures:
                    self._futures[next_key] = self._pool.submit(_prepared, cls)

    def take(self, key: str):
        """The prepared fixture for ``key`` (waiting for it), or None."""
        with self._lock:
            future = self._futures.pop(key, None)
        return future.result() if future is not None else None

    def shutdown(self) -> None:
        with self._lock:
            futures, self._futures = list(self._futures.values()), {}
            pool, self._pool = self._pool, None
        for future in futures:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().shutdown()


def _prepared(cls):
    fixture_obj = cls()
    fixture_obj.prepare()
    return fixture_obj


PREFETCH = Prefetcher(int(os.environ.get("CLOUDD_GABBI_AHEAD", "2")))


# ---------------------------------------------------------------------------
# Seeding over the HTTP API.

LATEST = "placement latest"


class SeedError(RuntimeError):
    pass


class Provider:
    def __init__(self, name: str, uuid_: str) -> None:
        self.name = name
        self.uuid = uuid_


class Seeder:
    """Placement's test_base helpers (create_provider, add_inventory, ...) as
    admin requests against the running cloud."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        # No proxy lookup: it walks os.environ, which pytest changes while
        # this runs in a background thread.
        self.http.trust_env = False
        self.http.headers.update({"x-auth-token": "admin", "accept": "application/json",
                                  "openstack-api-version": LATEST})
        self._uuids: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body=None, version: str = LATEST,
             ok: tuple[int, ...] = (200, 201, 204)):
        resp = self.http.request(method, self.url + path, json=body,
                                 headers={"openstack-api-version": version})
        if resp.status_code not in ok:
            raise SeedError(f"seeding the fixture failed: {method} {path} "
                            f"({version}) {body!r} -> {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def sentinel(self, name: str) -> str:
        """uuidsentinel: one random UUID per name for the fixture's lifetime."""
        return self._uuids.setdefault(name, str(uuid.uuid4()))

    def generation(self, rp: Provider) -> int:
        return self.call("GET", f"/resource_providers/{rp.uuid}")["generation"]

    def create_provider(self, name: str, *aggs: str, uuid: str | None = None,
                        parent: str | None = None) -> Provider:
        body = {"name": name, "uuid": uuid or self.sentinel(name)}
        if parent:
            body["parent_provider_uuid"] = parent
        self.call("POST", "/resource_providers", body)
        rp = Provider(name, body["uuid"])
        if aggs:
            self.set_aggregates(rp, aggs)
        return rp

    def set_aggregates(self, rp: Provider, aggs) -> None:
        # Before 1.19 the body is a bare list and the provider's generation
        # does not move, as with Placement's ResourceProvider.set_aggregates().
        self.call("PUT", f"/resource_providers/{rp.uuid}/aggregates", list(aggs),
                  version="placement 1.18")

    def ensure_rc(self, name: str) -> None:
        if name.startswith("CUSTOM_"):
            self.call("PUT", f"/resource_classes/{name}")

    def ensure_trait(self, name: str) -> None:
        if name.startswith("CUSTOM_"):
            self.call("PUT", f"/traits/{name}")

    def add_inventory(self, rp: Provider, rc: str, total: int, **kw) -> None:
        self.ensure_rc(rc)
        kw.setdefault("max_unit", total)
        body = {"resource_class": rc, "total": total, **kw,
                "resource_provider_generation": self.generation(rp)}
        self.call("POST", f"/resource_providers/{rp.uuid}/inventories", body)

    def set_traits(self, rp: Provider, *traits: str) -> None:
        for name in traits:
            self.ensure_trait(name)
        body = {"traits": list(traits), "resource_provider_generation": self.generation(rp)}
        self.call("PUT", f"/resource_providers/{rp.uuid}/traits", body)

    def set_allocation(self, rp: Provider, consumer: str, project_id: str, user_id: str,
                       used: dict[str, int]) -> None:
        # 1.37: the consumer gets no consumer_type ("unknown"), as the fixture's
        # objects-level consumers have none in Placement.
        body = {"allocations": {rp.uuid: {"resources": used}}, "project_id": project_id,
                "user_id": user_id, "consumer_generation": None}
        self.call("PUT", f"/allocations/{consumer}", body, version="placement 1.37")


def _wait_listening(url: str, cloud: CloudProcess, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with DIRECT.open(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or cloud.proc is None or cloud.proc.poll() is not None:
            raise RuntimeError(f"Placement is not answering at {url}:\n"
                               + cloud.log_text()[-4000:])
        time.sleep(0.01)


def new_uuid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------
# The fixtures.


class APIFixture(fixture.GabbiFixture):
    """A fresh cloudd with Placement at the root of its own listener."""

    # Set per file and backend by FixtureSet.
    backend = "sqlite"
    reservation: PortReservation | None = None
    suite_key: str | None = None
    # Placement's APIFixture: deprecated rules still accepted. oslo.policy
    # (>= 4.5; Placement 16 runs with it) always checks scope_types.
    enforce_new_defaults = False
    enforce_scope = True

    def cloud_env(self) -> dict[str, str]:
        if self.reservation is None:  # used outside test_gabbits.py
            self.reservation = PortReservation()
        port = self.reservation.port
        self.url = f"http://127.0.0.1:{port}"
        env = {
            "CLOUDD_AUTH__STRATEGY": "noauth2",
            "CLOUDD_LISTENERS__PLACEMENT": f"127.0.0.1:{port}",
            "CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4",
            "CLOUDD_SERVER__ACCESS_LOG": os.environ.get("CLOUDD_GABBI_ACCESS_LOG", "false"),
            "CLOUDD_SERVER__SHUTDOWN_TIMEOUT": "5",
            "CLOUDD_POLICY__ENFORCE_NEW_DEFAULTS": str(self.enforce_new_defaults).lower(),
            "CLOUDD_POLICY__ENFORCE_SCOPE": str(self.enforce_scope).lower(),
        }
        if self.backend == "postgresql":
            env["CLOUDD_DATABASE__URL"] = postgres().create_database(
                f"g_{uuid.uuid4().hex[:12]}")
        return env

    def prepare_data_dir(self, data_dir: Path) -> None:
        """Write files the cloud reads at start (a policy.yaml, say)."""

    def prepare(self) -> None:
        """Start the cloud and seed it; the variables to export go to self.env.

        May run ahead of time in a thread (see Prefetcher): it must not touch
        os.environ, which the running tests read.
        """
        self.tmp = Path(tempfile.mkdtemp(prefix="cloudd-gabbi-"))
        self.cloud = None
        self.env: dict[str, str] = {}
        try:
            env = self.cloud_env()
            data_dir = self.tmp / "data"
            data_dir.mkdir()
            self.prepare_data_dir(data_dir)
            main_port = PortReservation()
            try:
                self.cloud = CloudProcess(data_dir, env=env, port=main_port.port).start()
                # Healthy means the main port listens; Placement's own listener
                # starts just after it.
                _wait_listening(self.url, self.cloud)
            finally:
                main_port.release()
                self.reservation.release()
            self.set_environ()
            seeder = Seeder(self.url)
            try:
                self.seed(seeder)
            finally:
                seeder.close()
        except BaseException:
            self.shutdown()
            raise

    def start_fixture(self) -> None:
        ready = PREFETCH.take(self.suite_key) if self.suite_key else None
        if ready is None:
            self.prepare()
        else:
            vars(self).update(vars(ready))
        os.environ.update(self.env)

    def stop_fixture(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        if self.cloud is not None:
            # SIGKILL: nothing to keep, and it is quicker than a graceful drain.
            self.cloud.stop(signal.SIGKILL)
            self.cloud = None
        if os.environ.get("CLOUDD_GABBI_KEEP"):
            print(f"\ncloudd gabbi: kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def set_environ(self) -> None:
        for name in ("RP_UUID", "RP_NAME", "RP_UUID1", "RP_NAME1", "RP_UUID2", "RP_NAME2",
                     "PROJECT_ID", "ADMIN_PROJECT_ID", "SERVICE_PROJECT_ID", "USER_ID",
                     "PROJECT_ID_ALT", "USER_ID_ALT", "INSTANCE_UUID", "MIGRATION_UUID",
                     "CONSUMER_UUID", "PARENT_PROVIDER_UUID", "ALT_PARENT_PROVIDER_UUID"):
            self.env[name] = new_uuid()
        self.env["CUSTOM_RES_CLASS"] = "CUSTOM_IRON_NFV"
        self.env["CUSTOM_RES_CLASS1"] = "CUSTOM_IRON_NFV1"
        self.env["CUSTOM_RES_CLASS2"] = "CUSTOM_IRON_NFV2"

    def seed(self, s: Seeder) -> None:
        """Create what the fixture starts with (nothing, for APIFixture)."""


class AllocationFixture(APIFixture):
    """One provider (VCPU 10, DISK_GB 2048) with three consumers' allocations."""

    def seed(self, s: Seeder) -> None:
        self.env["ALT_USER_ID"] = new_uuid()
        project_id = self.env["PROJECT_ID"]
        user_id = self.env["USER_ID"]
        alt_user_id = self.env["ALT_USER_ID"]

        rp = s.create_provider(self.env["RP_NAME"], uuid=self.env["RP_UUID"])
        s.add_inventory(rp, "DISK_GB", 2048, step_size=10, min_unit=10, max_unit=1000)
        s.add_inventory(rp, "VCPU", 10, max_unit=10)

        consumer1 = new_uuid()
        s.set_allocation(rp, consumer1, project_id, user_id, {"DISK_GB": 1000})
        self.env["CONSUMER_0"] = consumer1

        consumer2 = new_uuid()
        s.set_allocation(rp, consumer2, project_id, user_id, {"VCPU": 6})
        self.env["CONSUMER_ID"] = consumer2

        alt_consumer = new_uuid()
        self.env["ALT_CONSUMER_ID"] = alt_consumer
        s.set_allocation(rp, alt_consumer, project_id, alt_user_id, {"DISK_GB": 20, "VCPU": 1})

        self.env["ALT_RP_UUID"] = new_uuid()
        self.env["ALT_RP_NAME"] = new_uuid()


class SharedStorageFixture(APIFixture):
    """Two compute nodes (each with two NUMA nodes and a PF under each) and two
    sharing storage providers, all in one aggregate."""

    def seed(self, s: Seeder) -> None:
        agg = new_uuid()
        cn1 = s.create_provider("cn1", agg)
        cn2 = s.create_provider("cn2", agg)
        ss = s.create_provider("ss", agg)
        ss2 = s.create_provider("ss2", agg)
        numa1_1 = s.create_provider("numa1_1", parent=cn1.uuid)
        numa1_2 = s.create_provider("numa1_2", parent=cn1.uuid)
        numa2_1 = s.create_provider("numa2_1", parent=cn2.uuid)
        numa2_2 = s.create_provider("numa2_2", parent=cn2.uuid)
        pf1_1 = s.create_provider("pf1_1", parent=numa1_1.uuid)
        pf1_2 = s.create_provider("pf1_2", parent=numa1_2.uuid)
        pf2_1 = s.create_provider("pf2_1", parent=numa2_1.uuid)
        pf2_2 = s.create_provider("pf2_2", parent=numa2_2.uuid)

        self.env["AGG_UUID"] = agg
        for var, rp in (("CN1", cn1), ("CN2", cn2), ("SS", ss), ("SS2", ss2),
                        ("NUMA1_1", numa1_1), ("NUMA1_2", numa1_2), ("NUMA2_1", numa2_1),
                        ("NUMA2_2", numa2_2), ("PF1_1", pf1_1), ("PF1_2", pf1_2),
                        ("PF2_1", pf2_1), ("PF2_2", pf2_2)):
            self.env[f"{var}_UUID"] = rp.uuid

        for cn in (cn1, cn2):
            s.add_inventory(cn, "VCPU", 24, allocation_ratio=16.0)
            s.add_inventory(cn, "MEMORY_MB", 128 * 1024, allocation_ratio=1.5)
        s.set_traits(cn1, "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2")
        s.add_inventory(cn2, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
        for shared in (ss, ss2):
            s.add_inventory(shared, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
            s.set_traits(shared, "MISC_SHARES_VIA_AGGREGATE")
        for pf in (pf1_1, pf1_2, pf2_1, pf2_2):
            s.add_inventory(pf, "SRIOV_NET_VF", 8, allocation_ratio=1.0)


class NUMAAggregateFixture(APIFixture):
    """Two compute nodes without resources of their own, with NUMA children
    holding VCPU, and sharing storage reached through aggregates."""

    def seed(self, s: Seeder) -> None:
        agg_a, agg_b, agg_c = new_uuid(), new_uuid(), new_uuid()
        cn1 = s.create_provider("cn1", agg_a)
        cn2 = s.create_provider("cn2", agg_a, agg_b)
        ss1 = s.create_provider("ss1", agg_a)
        ss2 = s.create_provider("ss2", agg_c)
        numa1_1 = s.create_provider("numa1_1", agg_c, parent=cn1.uuid)
        numa1_2 = s.create_provider("numa1_2", parent=cn1.uuid)
        numa2_1 = s.create_provider("numa2_1", parent=cn2.uuid)
        numa2_2 = s.create_provider("numa2_2", parent=cn2.uuid)

        self.env["AGGA_UUID"] = agg_a
        self.env["AGGB_UUID"] = agg_b
        self.env["AGGC_UUID"] = agg_c
        for var, rp in (("CN1", cn1), ("CN2", cn2), ("SS1", ss1), ("SS2", ss2),
                        ("NUMA1_1", numa1_1), ("NUMA1_2", numa1_2), ("NUMA2_1", numa2_1),
                        ("NUMA2_2", numa2_2)):
            self.env[f"{var}_UUID"] = rp.uuid

        for numa in (numa1_1, numa1_2, numa2_1, numa2_2):
            s.add_inventory(numa, "VCPU", 24, allocation_ratio=16.0)
        for ss in (ss1, ss2):
            s.add_inventory(ss, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
            s.set_traits(ss, "MISC_SHARES_VIA_AGGREGATE")


class NUMANetworkFixture(APIFixture):
    """Compute hosts with NUMA nodes, devices, network agents and NICs (see
    Placement's fixture of the same name for the picture)."""

    cn1: Provider | None = None
    cn2: Provider | None = None

    def seed(self, s: Seeder) -> None:
        self.make_entities(s)

    def make_entities(self, s: Seeder) -> None:
        agg_a = new_uuid()
        self.env["AGGA_UUID"] = agg_a

        ss1 = s.create_provider("ss1", agg_a)
        s.set_traits(ss1, "MISC_SHARES_VIA_AGGREGATE")
        s.add_inventory(ss1, "DISK_GB", 2000)
        self.env["SS1_UUID"] = ss1.uuid

        # cn1
        if not self.cn1:
            self.cn1 = s.create_provider("cn1", agg_a)
        s.set_aggregates(self.cn1, [agg_a])
        s.set_traits(self.cn1, "COMPUTE_VOLUME_MULTI_ATTACH")
        self.env["CN1_UUID"] = self.cn1.uuid

        numas = []
        for i in (0, 1):
            numa = s.create_provider(f"numa{i}", parent=self.cn1.uuid)
            traits = ["HW_NUMA_ROOT"] + (["CUSTOM_FOO"] if i == 1 else [])
            s.set_traits(numa, *traits)
            s.add_inventory(numa, "VCPU", 4)
            numas.append(numa)
            self.env[f"NUMA{i}_UUID"] = numa.uuid
        s.add_inventory(numas[0], "MEMORY_MB", 2048, min_unit=512, step_size=256)
        s.add_inventory(numas[1], "MEMORY_MB", 2048, min_unit=256, max_unit=1024)
        user, project = "numafx-user", "numafx-project"
        s.set_allocation(numas[0], new_uuid(), project, user, {"VCPU": 2})

        fpga = s.create_provider("fpga0", parent=numas[0].uuid)
        s.add_inventory(fpga, "FPGA", 1)
        self.env["FPGA0_UUID"] = fpga.uuid

        pgpu = s.create_provider("pgpu0", parent=numas[0].uuid)
        s.add_inventory(pgpu, "VGPU", 8)
        self.env["PGPU0_UUID"] = pgpu.uuid

        for i in (0, 1):
            fpga = s.create_provider(f"fpga1_{i}", parent=numas[1].uuid)
            s.add_inventory(fpga, "FPGA", 1)
            self.env[f"FPGA1_{i}_UUID"] = fpga.uuid

        agent = s.create_provider("sriov_agent", parent=self.cn1.uuid)
        s.set_traits(agent, "CUSTOM_VNIC_TYPE_DIRECT")
        self.env["SRIOV_AGENT_UUID"] = agent.uuid

        for i in (1, 2):
            dev = s.create_provider(f"esn{i}", parent=agent.uuid)
            s.set_traits(dev, f"CUSTOM_PHYSNET{i}")
            s.add_inventory(dev, "NET_BW_EGR_KILOBIT_PER_SEC", 10000 * i)
            self.env[f"ESN{i}_UUID"] = dev.uuid

        agent = s.create_provider("ovs_agent", parent=self.cn1.uuid)
        s.set_traits(agent, "CUSTOM_VNIC_TYPE_NORMAL")
        self.env["OVS_AGENT_UUID"] = agent.uuid

        dev = s.create_provider("br_int", parent=agent.uuid)
        s.set_traits(dev, "CUSTOM_PHYSNET0")
        s.add_inventory(dev, "NET_BW_EGR_KILOBIT_PER_SEC", 1000)
        self.env["BR_INT_UUID"] = dev.uuid

        # cn2
        if not self.cn2:
            self.cn2 = s.create_provider("cn2")
        s.set_aggregates(self.cn2, [agg_a])
        s.add_inventory(self.cn2, "VCPU", 8)
        s.set_allocation(self.cn2, new_uuid(), project, user, {"VCPU": 3})
        s.add_inventory(self.cn2, "MEMORY_MB", 2048, min_unit=1024, step_size=128)
        s.add_inventory(self.cn2, "DISK_GB", 1000)
        s.set_traits(self.cn2, "CUSTOM_FOO")
        self.env["CN2_UUID"] = self.cn2.uuid

        nics = []
        for i in (1, 2, 3):
            nic = s.create_provider(f"nic{i}", parent=self.cn2.uuid)
            s.set_traits(nic, "CUSTOM_HW_NIC_ROOT")
            nics.append(nic)
            self.env[f"NIC{i}_UUID"] = nic.uuid
        for i in (1, 2):  # PFs of nic1
            suf = f"1_{i}"
            pf = s.create_provider(f"pf{suf}", parent=nics[0].uuid)
            s.set_traits(pf, f"CUSTOM_PHYSNET{i}")
            s.add_inventory(pf, "CUSTOM_VF", 4)
            self.env[f"PF{suf}_UUID"] = pf.uuid
        for i in (0, 1, 2, 3):  # PFs of nic2
            suf = f"2_{i + 1}"
            pf = s.create_provider(f"pf{suf}", parent=nics[1].uuid)
            s.set_traits(pf, f"CUSTOM_PHYSNET{(i % 2) + 1}")
            s.add_inventory(pf, "CUSTOM_VF", 2)
            self.env[f"PF{suf}_UUID"] = pf.uuid
        pf = s.create_provider("pf3_1", parent=nics[2].uuid)  # PF of nic3
        s.set_traits(pf, "CUSTOM_PHYSNET1")
        s.add_inventory(pf, "CUSTOM_VF", 8)
        self.env["PF3_1_UUID"] = pf.uuid


class DeepNUMANetworkFixture(NUMANetworkFixture):
    """NUMANetworkFixture with empty parents and a grandparent above cn1, cn2."""

    def make_entities(self, s: Seeder) -> None:
        gp1 = s.create_provider("gp1")
        p1 = s.create_provider("p1", parent=gp1.uuid)
        p2 = s.create_provider("p2", parent=gp1.uuid)
        self.cn1 = s.create_provider("cn1", parent=p1.uuid)
        self.cn2 = s.create_provider("cn2", parent=p2.uuid)
        super().make_entities(s)


class NonSharedStorageFixture(APIFixture):
    """Three compute nodes with local VCPU, MEMORY_MB and DISK_GB."""

    def seed(self, s: Seeder) -> None:
        for name in ("AGGA_UUID", "AGGB_UUID", "AGGC_UUID"):
            self.env[name] = new_uuid()
        cns = [s.create_provider(f"cn{i}") for i in (1, 2, 3)]
        for i, cn in enumerate(cns, 1):
            self.env[f"CN{i}_UUID"] = cn.uuid
        for cn in cns:
            s.add_inventory(cn, "VCPU", 24)
            s.add_inventory(cn, "MEMORY_MB", 128 * 1024)
            s.add_inventory(cn, "DISK_GB", 2000)


class CORSFixture(APIFixture):
    """Placement with CORS on for http://valid.example.com.

    cloudd has no CORS support (see known_failures.yaml); the fixture is the
    plain APIFixture.
    """


class GranularFixture(APIFixture):
    """Three compute nodes and sharing providers across three aggregates, for
    granular requests (see Placement's fixture for the picture)."""

    def seed(self, s: Seeder) -> None:
        s.ensure_rc("CUSTOM_NET_MBPS")
        agg_a, agg_b, agg_c = s.sentinel("aggA"), s.sentinel("aggB"), s.sentinel("aggC")
        self.env["AGGA"] = agg_a
        self.env["AGGB"] = agg_b
        self.env["AGGC"] = agg_c

        cn_left = s.create_provider("cn_left", agg_a)
        self.env["CN_LEFT"] = cn_left.uuid
        for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("DISK_GB", 500), ("VGPU", 8),
                          ("SRIOV_NET_VF", 8), ("CUSTOM_NET_MBPS", 4000)):
            s.add_inventory(cn_left, rc, total)
        s.set_traits(cn_left, "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_GPU_API_DXVA",
                     "HW_NIC_DCB_PFC", "CUSTOM_FOO")

        cn_middle = s.create_provider("cn_middle", agg_a, agg_b)
        self.env["CN_MIDDLE"] = cn_middle.uuid
        for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("SRIOV_NET_VF", 8),
                          ("CUSTOM_NET_MBPS", 4000)):
            s.add_inventory(cn_middle, rc, total)
        s.set_traits(cn_middle, "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_SSE",
                     "HW_NIC_ACCEL_TLS")

        cn_right = s.create_provider("cn_right", agg_b, agg_c)
        self.env["CN_RIGHT"] = cn_right.uuid
        s.add_inventory(cn_right, "VCPU", 8)
        s.add_inventory(cn_right, "MEMORY_MB", 4096)
        s.add_inventory(cn_right, "DISK_GB", 500)
        s.add_inventory(cn_right, "VGPU", 8, max_unit=2)
        s.set_traits(cn_right, "HW_CPU_X86_MMX", "HW_GPU_API_DXVA", "CUSTOM_DISK_SSD")

        shr_disk_1 = s.create_provider("shr_disk_1", agg_a)
        self.env["SHR_DISK_1"] = shr_disk_1.uuid
        s.add_inventory(shr_disk_1, "DISK_GB", 1000)
        s.set_traits(shr_disk_1, "MISC_SHARES_VIA_AGGREGATE", "CUSTOM_DISK_SSD")

        shr_disk_2 = s.create_provider("shr_disk_2", agg_a, agg_b)
        self.env["SHR_DISK_2"] = shr_disk_2.uuid
        s.add_inventory(shr_disk_2, "DISK_GB", 1000)
        s.set_traits(shr_disk_2, "MISC_SHARES_VIA_AGGREGATE")

        shr_net = s.create_provider("shr_net", agg_c)
        self.env["SHR_NET"] = shr_net.uuid
        s.add_inventory(shr_net, "SRIOV_NET_VF", 16)
        s.add_inventory(shr_net, "CUSTOM_NET_MBPS", 40000)
        s.set_traits(shr_net, "MISC_SHARES_VIA_AGGREGATE")


class OpenPolicyFixture(APIFixture):
    """Every Placement rule but admin_api opened to anyone ("@"), through a
    policy.yaml in the data directory."""

    def prepare_data_dir(self, data_dir: Path) -> None:
        import yaml

        from cloudd.services.placement.policies import POLICIES
        rules = {name: "@" for name in POLICIES if name != "admin_api"}
        (data_dir / "policy.yaml").write_text(yaml.safe_dump(rules))


class SecureRBACPolicyFixture(APIFixture):
    """New defaults only, scope enforced."""

    enforce_new_defaults = True
    enforce_scope = True


class LegacyRBACPolicyFixture(APIFixture):
    """Deprecated rules still accepted (explicitly, as Placement's fixture)."""

    enforce_new_defaults = False


class NeutronQoSMultiSegmentFixture(APIFixture):
    """Four compute trees as Neutron builds them with QoS minimum bandwidth and
    packet rate on multi-segment networks (see Placement's fixture)."""

    def _compute(self, s: Seeder, n: int, physnet: str, bw_ovs: int, bw_pf: int,
                 second: str | None = None) -> None:
        c = f"compute{n}"
        cn = s.create_provider(c)
        self.env[c] = cn.uuid
        s.add_inventory(cn, "VCPU", 8)
        s.add_inventory(cn, "MEMORY_MB", 4096)
        s.add_inventory(cn, "DISK_GB", 500)

        ovs = s.create_provider(f"{c}:Open vSwitch agent", parent=cn.uuid)
        self.env[f"{c}:ovs_agent"] = ovs.uuid
        s.add_inventory(ovs, "NET_PACKET_RATE_KILOPACKET_PER_SEC", 1000)
        s.set_traits(ovs, "CUSTOM_VNIC_TYPE_NORMAL")

        br_ex = s.create_provider(f"{c}:Open vSwitch agent:br-ex", parent=ovs.uuid)
        self.env[f"{c}:br_ex"] = br_ex.uuid
        s.add_inventory(br_ex, "NET_BW_EGR_KILOBIT_PER_SEC", bw_ovs)
        s.add_inventory(br_ex, "NET_BW_IGR_KILOBIT_PER_SEC", bw_ovs)
        s.set_traits(br_ex, "CUSTOM_VNIC_TYPE_NORMAL", physnet)

        if second:
            br_ex2 = s.create_provider(f"{c}:Open vSwitch agent:br-ex2", parent=ovs.uuid)
            self.env[f"{c}:br_ex2"] = br_ex2.uuid
            s.add_inventory(br_ex2, "NET_BW_EGR_KILOBIT_PER_SEC", bw_ovs)
            s.add_inventory(br_ex2, "NET_BW_IGR_KILOBIT_PER_SEC", bw_ovs)
            s.set_traits(br_ex2, "CUSTOM_VNIC_TYPE_NORMAL", second)

        vnics = ("CUSTOM_VNIC_TYPE_DIRECT", "CUSTOM_VNIC_TYPE_DIRECT_PHYSICAL",
                 "CUSTOM_VNIC_TYPE_MACVTAP")
        sriov = s.create_provider(f"{c}:NIC Switch agent", parent=cn.uuid)
        # Placement's fixture sets compute3:sriov_agent to compute2's agent (a
        # slip no test depends on); keep the same values.
        if n == 3:
            self.env[f"{c}:sriov_agent"] = self.env["compute2:sriov_agent"]
        else:
            self.env[f"{c}:sriov_agent"] = sriov.uuid
        s.set_traits(sriov, *vnics)

        pfs = [("enp129s0f0", physnet)] + ([("enp129s0f1", second)] if second else [])
        for i, (dev, net) in enumerate(pfs):
            pf = s.create_provider(f"{c}:NIC Switch agent:{dev}", parent=sriov.uuid)
            self.env[f"{c}:pf{i}"] = pf.uuid
            s.add_inventory(pf, "NET_BW_EGR_KILOBIT_PER_SEC", bw_pf)
            s.add_inventory(pf, "NET_BW_IGR_KILOBIT_PER_SEC", bw_pf)
            s.set_traits(pf, *vnics, net)

    def seed(self, s: Seeder) -> None:
        self._compute(s, 0, "CUSTOM_PHYSNET_OTHER", 5000, 10000)
        self._compute(s, 1, "CUSTOM_PHYSNET_MSN_S1", 5000, 10000)
        self._compute(s, 2, "CUSTOM_PHYSNET_MSN_S2", 5000, 10000)
        self._compute(s, 3, "CUSTOM_PHYSNET_MSN_S1", 1000, 1000,
                      second="CUSTOM_PHYSNET_MSN_S2")


FIXTURES = {cls.__name__: cls for cls in (
    APIFixture, AllocationFixture, SharedStorageFixture, NUMAAggregateFixture,
    NUMANetworkFixture, DeepNUMANetworkFixture, NonSharedStorageFixture, CORSFixture,
    GranularFixture, OpenPolicyFixture, SecureRBACPolicyFixture, LegacyRBACPolicyFixture,
    NeutronQoSMultiSegmentFixture)}


class FixtureSet:
    """What gabbi is given as ``fixture_module`` for one YAML file on one backend:
    each fixture class, subclassed to carry the backend and the reserved port."""

    def __init__(self, backend: str, reservation: PortReservation,
                 suite_key: str | None = None) -> None:
        self.backend = backend
        self.reservation = reservation
        self.suite_key = suite_key
        self._made: dict[str, type] = {}

    def __getattr__(self, name: str) -> type:
        if name.startswith("_") or name not in FIXTURES:
            raise AttributeError(f"no gabbi fixture named {name!r} in tests.placement.fixtures")
        if name not in self._made:
            self._made[name] = type(name, (FIXTURES[name],), {
                "backend": self.backend, "reservation": self.reservation,
                "suite_key": self.suite_key})
        return self._made[name]
