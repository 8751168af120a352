"""Run a real `cloudd serve` in a subprocess, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from cloudd.testing.postgres import free_port

# Health checks never consult proxy settings: reading them walks os.environ,
# which pytest changes under a thread that starts clouds in the background.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def environ_snapshot() -> dict[str, str]:
    """A copy of os.environ that is safe while another thread changes it."""
    for _ in range(100):
        try:
            return dict(os.environ)
        except (RuntimeError, KeyError):
            continue
    return dict(os.environ)


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 timeout: float = 30.0) -> int | None:
    """Signal a child, wait (killing it after ``timeout``); its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class CloudProcess:
    """`cloudd serve` on a free port with its own data directory.

    ``env`` adds CLOUDD_SECTION__KEY settings (a database URL, say). The
    local compute agent is off unless ``env`` turns it on.
    """

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-serve.log"
        self.started_in: float = 0.0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in environ_snapshot().items()
               if not k.startswith(("CLOUDD_", "OS_"))}
        # No compute agent for this host unless a test asks for one: an agent
        # registers a resource provider, which tests of placement must not see.
        env["CLOUDD_COMPUTE__LOCAL_AGENT"] = "none"
        # Guests of test clouds running side by side share this host's bridges
        # and nftables: each cloud gets its own default subnet and tables, from
        # its port (unique while it runs): 10.(port >> 8).(port & 255).0/24.
        env["CLOUDD_NETWORK__DEFAULT_CIDR"] = f"10.{self.port >> 8}.{self.port & 255}.0/24"
        env["CLOUDD_HOST_NETWORK__NFT_TABLE"] = f"cloudd_p{self.port}"
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> CloudProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cloudd", "--data-dir", str(self.data_dir), "serve",
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env())
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cloudd exited with {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-4000:])
            try:
                with DIRECT.open(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        self.started_in = time.monotonic() - t0
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("cloudd did not become healthy in time:\n"
                           + self.log_path.read_text()[-4000:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        code = stop_process(self.proc, sig, timeout)
        self.proc = None
        return 0 if code is None else code

    @property
    def clouds_yaml(self) -> Path:
        return self.data_dir / "clouds.yaml"

    def admin_auth(self) -> dict:
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"]["cloudd"]["auth"]

    def log_text(self) -> str:
        return self.log_path.read_text()
