"""Run real `cloudd agent` processes beside a CloudProcess, as an operator would."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from cloudd.testing.process import CloudProcess, stop_process


class AgentProcess:
    """`cloudd host add NAME` on the controller's database, then `cloudd agent`.

    ``env`` adds CLOUDD_SECTION__KEY settings for the agent (fake driver
    knobs, say); the agent keeps its state in its own directory.
    """

    def __init__(self, cloud: CloudProcess, host: str, *, driver: str = "fake",
                 env: dict[str, str] | None = None) -> None:
        self.cloud = cloud
        self.host = host
        self.driver = driver
        self.extra_env = env or {}
        self.dir = cloud.data_dir.parent / f"agent-{host}"
        self.credential_file = self.dir / "credential"
        self.log_path = cloud.data_dir.parent / f"agent-{host}.log"
        self.proc: subprocess.Popen | None = None

    def add_host(self) -> None:
        """Issue the host's credential (once) into a 0600 file."""
        if self.credential_file.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "cloudd", "--data-dir", str(self.cloud.data_dir), "host",
             "add", self.host, "--output", str(self.credential_file)],
            env=self.cloud.env(), check=True, capture_output=True, timeout=60)

    def start(self) -> AgentProcess:
        self.add_host()
        env = {k: v for k, v in self.cloud.env().items() if not k.startswith("CLOUDD_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cloudd", "--data-dir", str(self.dir), "agent",
                 "--controller", self.cloud.url, "--host", self.host, "--driver",
                 self.driver, "--credential-file", str(self.credential_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        code = stop_process(self.proc, sig, timeout)
        self.proc = None
        return code

    def log_text(self) -> str:
        return Path(self.log_path).read_text() if Path(self.log_path).exists() else ""
