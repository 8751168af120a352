"""The `cloudd` command: serve, agent, host add|list|remove, db init|upgrade|status,
token-keys rotate."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cloudd import config as config_mod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cloudd", description="An OpenStack-compatible "
                                "compute cloud in one process.")
    p.add_argument("--config", help="TOML config file (see config.toml for every option)")
    p.add_argument("--data-dir", help="data directory (overrides [server] data_dir)")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the cloud")
    serve.add_argument("--listen", help="HOST:PORT (overrides [server] listen)")
    serve.add_argument("--local-agent", choices=["libvirt", "fake", "none"],
                       help="this host's compute agent (overrides [compute] local_agent)")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["init", "upgrade", "status"])
    keys = sub.add_parser("token-keys", help="Fernet token keys")
    keys.add_argument("action", choices=["rotate"])
    host = sub.add_parser("host", help="compute hosts' agent credentials")
    host_sub = host.add_subparsers(dest="host_action", required=True)
    add = host_sub.add_parser("add", help="issue a host's credential (shown once)")
    add.add_argument("name", help="the host name its agent uses (--host)")
    add.add_argument("--output", help="write the credential to this file (mode 0600) "
                                      "instead of printing it")
    host_sub.add_parser("list", help="hosts with a credential, and whether they are up")
    remove = host_sub.add_parser("remove", help="revoke a host's credential")
    remove.add_argument("name")
    agent = sub.add_parser("agent", help="run a compute agent for this hypervisor")
    agent.add_argument("--controller", help="the controller's URL (overrides [agent] "
                                            "controller), e.g. http://10.0.0.1:8800")
    agent.add_argument("--host", help="this host's name (overrides [agent] host)")
    agent.add_argument("--driver", choices=["fake", "libvirt"],
                       help="hypervisor driver (overrides [agent] driver)")
    agent.add_argument("--credential-file", help="file holding the credential from "
                       "`cloudd host add` (or set CLOUDD_AGENT_CREDENTIAL)")
    return p


def _load(args: argparse.Namespace) -> config_mod.Config:
    server: dict = {}
    if args.data_dir:
        server["data_dir"] = args.data_dir
    if getattr(args, "listen", None):
        server["listen"] = args.listen
    overrides: dict = {"server": server} if server else {}
    if getattr(args, "local_agent", None):
        overrides["compute"] = {"local_agent": args.local_agent}
    if args.command == "agent":
        agent = {key: getattr(args, attr) for key, attr in (
            ("controller", "controller"), ("host", "host"), ("driver", "driver"),
            ("credential_file", "credential_file")) if getattr(args, attr)}
        if agent:
            overrides["agent"] = agent
    return config_mod.load(args.config, overrides=overrides or None)


def _run(coro):
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _db(cfg: config_mod.Config, action: str) -> int:
    from cloudd.db import Database, migrate
    db = Database(cfg.database_url)
    try:
        if action == "init":
            made = await migrate.init(db)
            print("created the schema" if made else "the schema is already there")
        elif action == "upgrade":
            applied = await migrate.upgrade(db)
            print(f"applied migrations {applied}" if applied else "up to date")
        st = await migrate.status(db)
        current = "empty" if st.current is None else st.current
        print(f"schema version: {current} (this cloudd: {st.latest}); "
              f"database: {db.dialect}")
        migrate.check_not_newer(st)
        return 0
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = _load(args)
    except config_mod.ConfigError as e:
        print(f"cloudd: {e}", file=sys.stderr)
        return 2
    from cloudd import log
    log.setup(cfg.server.log_level, cfg.server.log_format)
    from cloudd.db.migrate import SchemaError
    try:
        if args.command == "serve":
            from cloudd.server import serve
            if cfg.runtime.use_uvloop:
                return _run(serve(cfg))
            return asyncio.run(serve(cfg))
        if args.command == "db":
            return _run(_db(cfg, args.action))
        if args.command == "host":
            from cloudd.agent.cli import host_command
            return _run(host_command(cfg, args))
        if args.command == "agent":
            from cloudd.agent.cli import agent_command
            return _run(agent_command(cfg))
        if args.command == "token-keys":
            from cloudd.services.identity.fernet import KeyRepository
            repo = KeyRepository(cfg.data_dir / "fernet-keys", cfg.identity.fernet_max_active_keys)
            repo.setup()
            print(f"new primary key: {repo.rotate()}")
            return 0
    except SchemaError as e:
        print(f"cloudd: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cloudd: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
