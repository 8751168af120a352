"""`cloudd serve`: start-up, the running cloud, and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from cloudd.config import Config, split_hostport
from cloudd.db import Database, migrate
from cloudd.policy import Enforcer
from cloudd.runtime import Supervisor
from cloudd.services.compute.service import ComputeService
from cloudd.services.identity import bootstrap
from cloudd.services.identity.janitor import RevocationJanitor
from cloudd.services.identity.service import IdentityService
from cloudd.web.app import build_listener, build_root, service_specs

log = logging.getLogger("cloudd")


class Cloud:
    """Everything one running cloudd holds: config, database, policy, services, actors."""

    def __init__(self, cfg: Config) -> None:
        self.config = cfg
        self.db = Database(cfg.database_url, echo=cfg.database.echo,
                           pool_size=cfg.database.pool_size)
        self.specs = service_specs()
        self.enforcer = Enforcer(policy_defaults(cfg, self.specs), cfg.data_dir / "policy.yaml",
                                 scope_types=policy_scope_types(self.specs),
                                 enforce_scope=cfg.policy.enforce_scope)
        self.identity = IdentityService(cfg, self.db)
        self.supervisor = Supervisor(sync_cast=cfg.runtime.sync_cast)
        self.supervisor.add(RevocationJanitor(self.db, cfg.identity.token_expiration))
        self.compute = ComputeService(self)
        for actor in self.compute.actors():
            self.supervisor.add(actor)

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await migrate.prepare(self.db)
        self.identity.setup_keys()
        password = await bootstrap.bootstrap(self.config, self.db)
        path = bootstrap.clouds_yaml_path(self.config)
        if password:
            # Printed once, to the terminal only (never to the log).
            print(f"cloudd: bootstrapped a new cloud. Admin password: {password}\n"
                  f"cloudd: credentials written to {path} (mode 0600); use\n"
                  f"  export OS_CLIENT_CONFIG_FILE={path}\n"
                  f"  openstack --os-cloud {bootstrap.CLOUD_NAME} token issue", flush=True)
        else:
            bootstrap.refresh_clouds_yaml(self.config)
        for spec in self.specs:
            if spec.on_start is not None:
                await spec.on_start(self)
        await self.supervisor.start()

    async def stop(self, timeout: float) -> None:
        await self.supervisor.stop(timeout)
        await self.db.close()


def policy_defaults(cfg: Config, specs) -> dict[str, str]:
    """Every API's default rules; deprecated ones OR'ed in unless enforce_new_defaults.

    As oslo.policy's Enforcer: a rule whose deprecated check differs from its
    new one becomes "(new) or (deprecated)". A rule that policy.yaml overrides
    is the file's rule alone (the Enforcer's overrides replace defaults).

    Base rules shared by several APIs (service_api, admin_api...) are one
    rule: every API's defaults go in first, then the deprecations, so a later
    API's copy of a base rule cannot drop an earlier API's deprecated check.
    """
    rules: dict[str, str] = {}
    for spec in specs:
        rules.update(spec.policies)
    if not cfg.policy.enforce_new_defaults:
        applied: set[tuple[str, str]] = set()
        for spec in specs:
            for name, old in spec.deprecated_policies.items():
                if old != rules[name] and (name, old) not in applied:
                    applied.add((name, old))
                    rules[name] = f"({rules[name]}) or ({old})"
    return rules


def policy_scope_types(specs) -> dict[str, list[str]]:
    """Every API's scope_types (rule name -> token scopes it accepts)."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        out.update(spec.scope_types)
    return out


async def serve(cfg: Config, *, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT; then stop accepting, drain, close. Returns 0."""
    started = time.monotonic()
    cloud = Cloud(cfg)
    await cloud.start()
    runners = []
    # Per-API listeners first, the main port last: once /healthz answers,
    # every listener is up.
    apps = [(listen, build_listener(cloud, name))
            for name, listen in cfg.listeners.model_dump().items() if listen]
    apps.append((cfg.server.listen, build_root(cloud)))
    for listen, app in apps:
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=cfg.server.shutdown_timeout)
        await runner.setup()
        host, port = split_hostport(listen)
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        runners.append(runner)
        log.info("listening", extra={"fields": {"address": listen}})
    log.info("cloudd ready", extra={"fields": {
        "url": cfg.public_url, "data_dir": str(cfg.data_dir),
        "database": cloud.db.dialect, "startup_ms": round((time.monotonic() - started) * 1000)}})
    local_agent = None
    if cfg.compute.local_agent != "none":
        # This host's own agent, connecting to the main listener just opened.
        from cloudd.agent.local import LocalAgent
        local_agent = LocalAgent(cloud).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down: draining requests and actors",
             extra={"fields": {"timeout_s": cfg.server.shutdown_timeout}})
    if local_agent is not None:
        await local_agent.stop(min(cfg.server.shutdown_timeout, 10.0))
    # Closing a runner stops its listener first, then waits for in-flight requests.
    await asyncio.gather(*(r.cleanup() for r in runners))
    await cloud.stop(cfg.server.shutdown_timeout)
    log.info("stopped")
    return 0
