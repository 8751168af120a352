"""Every host command the plumbing runs goes through a Runner (tests swap it)."""

from __future__ import annotations

import asyncio
import os
import subprocess


class CommandError(RuntimeError):
    pass


class Runner:
    """Runs commands off the event loop; process checks and signals too."""

    async def run(self, argv: list[str], *, input: str | None = None,
                  check: bool = True) -> tuple[int, str]:
        def go():
            return subprocess.run(argv, input=input, capture_output=True, text=True, check=False,
                                  timeout=60)
        try:
            p = await asyncio.to_thread(go)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(f"{argv[0]}: {exc}") from None
        if check and p.returncode != 0:
            raise CommandError(f"{' '.join(argv)}: exit {p.returncode}: "
                               f"{(p.stderr or p.stdout).strip()[:500]}")
        return p.returncode, p.stdout

    def alive(self, pid: int, name: str) -> bool:
        """Whether process ``pid`` runs and its command line contains ``name``."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return name.encode() in f.read()
        except OSError:
            return False

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
