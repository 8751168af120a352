"""A throwaway PostgreSQL server from the machine's own binaries (initdb/pg_ctl)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return Path(candidates[-1]).parent
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                              "install Debian's postgresql package (make test does)")


class PostgresServer:
    """initdb + pg_ctl in a temporary directory, trust auth on 127.0.0.1 only.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` system user that Debian's package creates.
    """

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cloudd-pg-"))
        self.datadir = self.dir / "data"
        self.user = "postgres"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and no 'postgres' user") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]

    def _cmd(self, name: str, *args: str) -> list[str]:
        return [*self._run_as, str(self.bindir / name), *args]

    def start(self) -> PostgresServer:
        subprocess.run(self._cmd("initdb", "-D", str(self.datadir), "-U", self.user,
                                 "-A", "trust", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True)
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.datadir), "-o", opts, "-w",
                                 "-l", str(self.dir / "log"), "start"),
                       check=True, capture_output=True)
        return self

    def stop(self) -> None:
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.datadir), "-m", "immediate",
                                 "-w", "stop"), capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create a database and return its SQLAlchemy URL."""
        subprocess.run([*self._run_as, "psql", "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", self.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                        "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{name}"
