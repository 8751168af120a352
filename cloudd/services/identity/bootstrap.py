"""First start: the Default domain, the standard roles, the admin, clouds.yaml."""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy import select

from cloudd.config import Config
from cloudd.db import Database
from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.tokens import SYSTEM_TARGET

log = logging.getLogger("cloudd.identity")

CLOUD_NAME = "cloudd"
# Keystone's bootstrap roles; each implies the next (admin > manager > member > reader).
ROLE_CHAIN = ["admin", "manager", "member", "reader"]
OTHER_ROLES = ["service"]


async def bootstrap(cfg: Config, db: Database) -> str | None:
    """Create what a new cloud needs. Returns the admin password if it was made now."""
    async with db.write() as conn:
        existing = (await conn.execute(select(t.domain.c.id).where(
            t.domain.c.id == store.DEFAULT_DOMAIN_ID))).first()
        if existing is not None:
            return None
        now = store.utcnow()
        await conn.execute(t.domain.insert().values(
            id=store.DEFAULT_DOMAIN_ID, name="Default", description="The default domain",
            enabled=True, created_at=now))
        role_ids = {}
        for name in ROLE_CHAIN + OTHER_ROLES:
            role_ids[name] = store.new_id()
            await conn.execute(t.role.insert().values(id=role_ids[name], name=name))
        for prior, implied in itertools.pairwise(ROLE_CHAIN):
            await conn.execute(t.implied_role.insert().values(
                prior_role_id=role_ids[prior], implied_role_id=role_ids[implied]))
        project_ids = {}
        for name in (cfg.identity.admin_project, "service"):
            project_ids[name] = store.new_id()
            await conn.execute(t.project.insert().values(
                id=project_ids[name], name=name, domain_id=store.DEFAULT_DOMAIN_ID,
                description=f"Bootstrap project {name}", created_at=now))
        password = secrets.token_urlsafe(18)
        user_id = store.new_id()
        await conn.execute(t.user.insert().values(
            id=user_id, name=cfg.identity.admin_user, domain_id=store.DEFAULT_DOMAIN_ID,
            password_hash=await store.hash_secret(password, cfg.identity.password_hash_rounds),
            password_created_at=now, default_project_id=project_ids[cfg.identity.admin_project],
            created_at=now))
        for atype, target in (("UserProject", project_ids[cfg.identity.admin_project]),
                              ("UserSystem", SYSTEM_TARGET)):
            await conn.execute(t.role_assignment.insert().values(
                type=atype, actor_id=user_id, target_id=target, role_id=role_ids["admin"],
                inherited=False))
        # Written before the commit: a crash in between re-runs bootstrap with a
        # new password, never leaves an admin nobody knows the password of.
        write_clouds_yaml(cfg, password)
    return password


def clouds_yaml_path(cfg: Config) -> Path:
    return cfg.data_dir / "clouds.yaml"


def write_clouds_yaml(cfg: Config, password: str) -> Path:
    path = clouds_yaml_path(cfg)
    doc = {"clouds": {CLOUD_NAME: {
        "auth": {"auth_url": f"{cfg.public_url}/identity", "username": cfg.identity.admin_user,
                 "password": password, "project_name": cfg.identity.admin_project,
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": cfg.server.region, "identity_api_version": 3, "interface": "public",
    }}}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_yaml_text(doc))
    os.replace(tmp, path)
    return path


def _yaml_text(doc: dict, indent: int = 0) -> str:
    """Block-style YAML of nested dicts of scalars, without loading PyYAML.

    Strings are written as JSON strings, which YAML reads as double-quoted
    scalars, so any character (a quote, a colon, a leading space) round-trips.
    """
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"{' ' * indent}{key}:\n{_yaml_text(value, indent + 2)}")
        else:
            lines.append(f"{' ' * indent}{key}: {json.dumps(value)}\n")
    return "".join(lines)


def refresh_clouds_yaml(cfg: Config) -> None:
    """Keep auth_url in clouds.yaml pointing where this start listens."""
    path = clouds_yaml_path(cfg)
    want = f"{cfg.public_url}/identity"
    try:
        text = path.read_text()
    except OSError:
        return
    if f"auth_url: {json.dumps(want)}\n" in text or f"auth_url: {want}\n" in text:
        return      # the usual case, told without loading PyYAML
    import yaml
    try:
        doc = yaml.safe_load(text)
        auth = doc["clouds"][CLOUD_NAME]["auth"]
    except (TypeError, KeyError, yaml.YAMLError):
        return
    if auth.get("auth_url") != want and auth.get("password"):
        write_clouds_yaml(cfg, auth["password"])
