"""`cloudd host add|list|remove` (on the controller's database) and `cloudd agent`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

ENV_CREDENTIAL = "CLOUDD_AGENT_CREDENTIAL"


def _err(message: str) -> None:
    print(f"cloudd: {message}", file=sys.stderr)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


async def host_command(cfg, args) -> int:
    from cloudd.db import Database, migrate
    from cloudd.services.compute import agent_auth, hosts
    from cloudd.services.compute.tasks import utcnow
    if args.host_action == "add" and not agent_auth.valid_host_name(args.name):
        _err(f"invalid host name {args.name!r}: up to 255 printable characters, no colon")
        return 2
    db = Database(cfg.database_url)
    try:
        await migrate.prepare(db)
        if args.host_action == "add":
            name = args.name
            existed = any(r.host == name for r in await agent_auth.listing(db))
            secret, _ = await agent_auth.issue(db, name, cfg.identity.password_hash_rounds)
            note = " (the previous credential no longer works)" if existed else ""
            if args.output:
                write_private(Path(args.output), secret + "\n")
                print(f"credential for host {name} written to {args.output} (mode 0600)"
                      f"{note}")
            else:
                print(f"credential for host {name}{note}; it is shown only this once:\n"
                      f"{secret}\n"
                      f"run the agent with it in a 0600 file:\n"
                      f"  cloudd agent --controller {cfg.public_url} --host {name} "
                      f"--credential-file FILE")
            return 0
        if args.host_action == "remove":
            if await agent_auth.remove(db, args.name):
                print(f"removed the credential of host {args.name}; its agent is "
                      "disconnected")
                return 0
            _err(f"no credential for host {args.name}")
            return 1
        rows = await agent_auth.listing(db)
        now = utcnow()
        print(f"{'HOST':30} {'STATE':14} CREDENTIAL ISSUED")
        for r in rows:
            if r.service_created_at is None:
                state = "never seen"
            else:
                state = "up" if hosts.is_up(r, cfg.compute.service_down_time, now) else "down"
            print(f"{r.host:30} {state:14} {r.created_at:%Y-%m-%d %H:%M:%S}")
        return 0
    finally:
        await db.close()


def read_credential(cfg) -> str | None:
    secret = os.environ.get(ENV_CREDENTIAL, "").strip()
    if secret:
        return secret
    if cfg.agent.credential_file:
        path = Path(cfg.agent.credential_file).expanduser()
        if path.stat().st_mode & 0o077:
            print(f"cloudd: warning: {path} is readable by others; chmod 600 it",
                  file=sys.stderr)
        return path.read_text().strip() or None
    return None


async def agent_command(cfg) -> int:
    from cloudd.agent import open_driver, state_dir
    from cloudd.agent.client import AgentClient
    if not cfg.agent.controller:
        _err("no controller: pass --controller URL or set [agent] controller")
        return 2
    host = cfg.agent.host or socket.gethostname()
    try:
        secret = read_credential(cfg)
    except OSError as e:
        _err(f"cannot read the credential file: {e}")
        return 2
    if not secret:
        _err(f"no credential: pass --credential-file FILE or set {ENV_CREDENTIAL} "
             f"(issue one on the controller with `cloudd host add {host}`)")
        return 2
    try:
        driver = await open_driver(cfg.agent.driver, host, cfg,
                                   controller=cfg.agent.controller, secret=secret)
    except RuntimeError as e:
        _err(str(e))
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = AgentClient(cfg.agent.controller, host, secret, driver, cfg.agent,
                         state_dir(cfg, host))
    try:
        code = await client.run(stop)
    finally:
        await driver.close()
    if code:
        _err(f"agent stopped: {client.error}")
    return code
