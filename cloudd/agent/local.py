"""The agent `cloudd serve` runs for its own host (``[compute] local_agent``).

The same client as `cloudd agent`, as an asyncio task in the controller's
process, connecting to the controller's own main listener. Its host name is
the machine's; its credential is made afresh on every start (only the hash
is stored; the secret stays in memory).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from cloudd.agent import open_driver, state_dir
from cloudd.agent.client import AgentClient
from cloudd.config import split_hostport
from cloudd.services.compute import agent_auth

log = logging.getLogger("cloudd.agent")


def local_url(cfg) -> str:
    host, port = split_hostport(cfg.server.listen)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class LocalAgent:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.host = socket.gethostname()
        self.client: AgentClient | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> LocalAgent:
        self._task = asyncio.create_task(self._run(), name="local-agent")
        return self

    async def _run(self) -> int:
        cfg = self.cloud.config
        kind = cfg.compute.local_agent
        secret, hashed = await agent_auth.issue(self.cloud.db, self.host,
                                                cfg.identity.password_hash_rounds)
        self.cloud.compute.hub.auth.remember(self.host, secret, hashed)
        try:
            driver = await open_driver(kind, self.host, cfg, controller=local_url(cfg),
                                       secret=secret)
        except RuntimeError as e:
            log.warning("local agent: %s; using the fake driver instead (instances are "
                        "kept in memory only)", e, extra={"fields": {"wanted": kind}})
            driver = await open_driver("fake", self.host, cfg)
        try:
            self.client = AgentClient(local_url(cfg), self.host, secret, driver, cfg.agent,
                                      state_dir(cfg, self.host))
            log.info("local agent starting", extra={"fields": {
                "host": self.host, "driver": driver.name}})
            return await self.client.run(self._stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("local agent failed")
            return 1
        finally:
            await driver.close()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
