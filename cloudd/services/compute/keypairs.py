"""Keypairs: /os-keypairs (Nova's keypairs.py).

For other compute modules:

    async def get_keypair(conn, user_id, name) -> Row | None
        Row has name, public_key, fingerprint, key_type, user_id.

Generation (no public_key) is allowed below 2.92: ssh keys are RSA 2048 as
Nova makes them ("ssh-rsa ... Generated-by-Nova"), x509 ones a self-signed
certificate with the private key as base64 PKCS#12.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime as dt
import hashlib
import secrets

from aiohttp import web
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.compute import common, nova_schema, quota_store
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-keypairs:%s"
_OWNER = "(rule:admin_api) or user_id:%(user_id)s"


def _name(pattern: str) -> dict:
    return {"allOf": [nova_schema.NAME, {"type": "string", "pattern": pattern,
                                         "minLength": 1, "maxLength": 255}]}


CREATE = {"type": "object",
          "properties": {"keypair": {
              "type": "object",
              "properties": {"name": _name(r"^[_\- a-zA-Z0-9]+$"),
                             "public_key": {"type": "string"}},
              "required": ["name"], "additionalProperties": False}},
          "required": ["keypair"], "additionalProperties": False}
CREATE_V22 = copy.deepcopy(CREATE)
CREATE_V22["properties"]["keypair"]["properties"]["type"] = {
    "type": "string", "enum": ["ssh", "x509"]}
CREATE_V210 = copy.deepcopy(CREATE_V22)
CREATE_V210["properties"]["keypair"]["properties"]["user_id"] = {"type": "string"}
CREATE_V292 = copy.deepcopy(CREATE_V210)
CREATE_V292["properties"]["keypair"]["properties"]["name"] = _name(
    r"^[_\-\@\. a-zA-Z0-9]+$")
CREATE_V292["properties"]["keypair"]["required"] = ["name", "public_key"]


def _colon_hex(raw_hex: str) -> str:
    return ":".join(a + b for a, b in zip(raw_hex[::2], raw_hex[1::2]))


def ssh_fingerprint(public_key: str) -> str:
    """Nova's crypto.generate_fingerprint: md5 of the decoded key, colon hex."""
    from cryptography.hazmat.primitives import serialization
    try:
        serialization.load_ssh_public_key(public_key.encode("utf-8"))
        data = base64.b64decode(public_key.split(" ")[1])
        return _colon_hex(hashlib.md5(data, usedforsecurity=False).hexdigest())
    except Exception:  # noqa: BLE001 - any parse failure is the client's bad key
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint") \
            from None


def x509_fingerprint(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
        return _colon_hex(binascii.hexlify(cert.fingerprint(hashes.SHA1())).decode())
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ApiError(400, "Keypair data is invalid: failed to generate X509 fingerprint. "
                            f"Error message: {exc}") from None


def generate_ssh() -> tuple[str, str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    public = f"{public} Generated-by-Nova"
    return private, public, ssh_fingerprint(public)


def generate_x509(user_id: str) -> tuple[str, str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption())
    return base64.b64encode(bundle).decode("ascii"), pem, x509_fingerprint(pem)


async def get_keypair(conn, user_id: str, name: str):
    return (await conn.execute(t.keypair.select().where(
        t.keypair.c.user_id == user_id, t.keypair.c.name == name))).first()


def _not_found(name: str, user_id: str) -> ApiError:
    return ApiError(404, f"Keypair {name} not found for user {user_id}")


def _user(request: web.Request) -> str:
    ctx = common.context(request)
    if common.at_least(request, 2, 10) and "user_id" in request.query:
        return request.query.getall("user_id")[0]
    return ctx.user_id


def _id(row) -> int | str:
    return int(row.id) if str(row.id).isdigit() else row.id


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    if common.at_least(request, 2, 92):
        schema = CREATE_V292
    elif common.at_least(request, 2, 10):
        schema = CREATE_V210
    elif common.at_least(request, 2, 2):
        schema = CREATE_V22
    else:
        schema = CREATE
    params = nova_schema.check(schema, await read_json(request))["keypair"]
    name = params["name"].strip()
    key_type = params.get("type", "ssh")
    user_id = params.get("user_id") or ctx.user_id
    ctx.authorize(ROOT % "create", {"user_id": user_id})
    private_key = None
    if "public_key" in params:
        public_key = params["public_key"]
        fingerprint = ssh_fingerprint(public_key) if key_type == "ssh" \
            else x509_fingerprint(public_key)
    elif key_type == "ssh":
        private_key, public_key, fingerprint = await asyncio.to_thread(generate_ssh)
    else:
        private_key, public_key, fingerprint = await asyncio.to_thread(generate_x509, user_id)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        await quota_store.enforce(conn, cloud.config, ctx.project_id or user_id, user_id,
                                  {"key_pairs": 1},
                                  message="Quota exceeded, too many key pairs.")
        if await get_keypair(conn, user_id, name):
            raise ApiError(409, f"Key pair '{name}' already exists.")
        try:
            async with conn.begin_nested():
                await conn.execute(t.keypair.insert().values(
                    id=str(secrets.randbelow(2**31 - 1) + 1), user_id=user_id, name=name,
                    key_type=key_type, public_key=public_key, fingerprint=fingerprint,
                    created_at=utcnow()))
        except IntegrityError:
            raise ApiError(409, f"Key pair '{name}' already exists.") from None
    body: dict = {}
    if private_key is not None:
        body["private_key"] = private_key
    if common.at_least(request, 2, 2):
        body["type"] = key_type
    body.update(name=name, public_key=public_key, fingerprint=fingerprint, user_id=user_id)
    return web.json_response({"keypair": body},
                             status=201 if common.at_least(request, 2, 2) else 200)


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    user_id = _user(request)
    ctx.authorize(ROOT % "index", {"user_id": user_id})
    paged = common.at_least(request, 2, 35)
    limit, marker = common.limit_and_marker(request) if paged else (None, None)
    query = t.keypair.select().where(t.keypair.c.user_id == user_id).order_by(t.keypair.c.name)
    async with common.cloud(request).db.read() as conn:
        if marker is not None:
            if await get_keypair(conn, user_id, marker) is None:
                raise ApiError(400, f"Marker {marker} could not be found.")
            query = query.where(t.keypair.c.name > marker)
        if limit is not None:
            query = query.limit(limit)
        rows = list(await conn.execute(query))
    with_type = common.at_least(request, 2, 2)
    items = []
    for row in rows:
        item = {"name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint}
        if with_type:
            item["type"] = row.key_type
        items.append({"keypair": item})
    body: dict = {"keypairs": items}
    if paged and limit and len(rows) == limit:
        body["keypairs_links"] = [common.next_link(request, "os-keypairs", rows[-1].name)]
    return web.json_response(body)


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    user_id = _user(request)
    ctx.authorize(ROOT % "show", {"user_id": user_id})
    name = request.match_info["name"]
    async with common.cloud(request).db.read() as conn:
        row = await get_keypair(conn, user_id, name)
    if row is None:
        raise _not_found(name, user_id)
    body = {"name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint,
            "user_id": row.user_id, "created_at": common.isotime_micro(row.created_at),
            "deleted": False, "deleted_at": None, "id": _id(row), "updated_at": None}
    if common.at_least(request, 2, 2):
        body["type"] = row.key_type
    return web.json_response({"keypair": body})


async def delete_keypair(request: web.Request) -> web.Response:
    ctx = common.context(request)
    user_id = _user(request)
    ctx.authorize(ROOT % "delete", {"user_id": user_id})
    name = request.match_info["name"]
    async with common.cloud(request).db.write() as conn:
        res = await conn.execute(delete(t.keypair).where(
            t.keypair.c.user_id == user_id, t.keypair.c.name == name))
    if res.rowcount == 0:
        raise _not_found(name, user_id)
    return web.Response(status=204 if common.at_least(request, 2, 2) else 202)


ROUTES = {
    "/os-keypairs": {"GET": (index, None), "POST": (create, None)},
    "/os-keypairs/{name}": {"GET": (show, None), "DELETE": (delete_keypair, None)},
}

POLICIES = {ROOT % action: _OWNER for action in ("index", "create", "delete", "show")}
