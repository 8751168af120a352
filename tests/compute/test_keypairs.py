"""Keypairs: import, generation, per-version fields, ownership, quota."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.compute.conftest import call

pytestmark = pytest.mark.asyncio
ALICE = "alice:p1"
BOB = "bob:p1"


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " me@host"


def md5_fingerprint(public: str) -> str:
    raw = hashlib.md5(base64.b64decode(public.split()[1])).hexdigest()
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


async def test_import_show_list_delete_by_version(api):
    pub = ssh_public_key()
    resp, body = await call(api, "POST", "/v2.1/os-keypairs",
                            {"keypair": {"name": "k1", "public_key": pub}}, token=ALICE)
    assert resp.status == 200, body
    assert body["keypair"] == {"name": "k1", "public_key": pub, "user_id": "alice",
                               "fingerprint": md5_fingerprint(pub)}
    _, body = await call(api, "GET", "/v2.1/os-keypairs/k1", token=ALICE, version="2.2",
                         status=200)
    kp = body["keypair"]
    assert kp["type"] == "ssh" and kp["deleted"] is False and isinstance(kp["id"], int)
    _, body = await call(api, "GET", "/v2.1/os-keypairs", token=ALICE, status=200)
    assert body == {"keypairs": [{"keypair": {"name": "k1", "public_key": pub,
                                              "fingerprint": md5_fingerprint(pub)}}]}
    _, body = await call(api, "GET", "/v2.1/os-keypairs", token=BOB, status=200)
    assert body == {"keypairs": []}
    await call(api, "GET", "/v2.1/os-keypairs/k1", token=BOB, status=404)
    _, err = await call(api, "POST", "/v2.1/os-keypairs",
                        {"keypair": {"name": "k1", "public_key": pub}}, token=ALICE,
                        status=409)
    assert err["conflictingRequest"]["message"] == "Key pair 'k1' already exists."
    resp, _ = await call(api, "DELETE", "/v2.1/os-keypairs/k1", token=ALICE, version="2.2")
    assert resp.status == 204
    _, err = await call(api, "DELETE", "/v2.1/os-keypairs/k1", token=ALICE, status=404)
    assert err["itemNotFound"]["message"] == "Keypair k1 not found for user alice"


async def test_invalid_keys_and_names(api):
    _, err = await call(api, "POST", "/v2.1/os-keypairs",
                        {"keypair": {"name": "k", "public_key": "ssh-rsa garbage"}},
                        token=ALICE, status=400)
    assert err["badRequest"]["message"] == \
        "Keypair data is invalid: failed to generate fingerprint"
    pub = ssh_public_key()
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "a.b", "public_key": pub}}, token=ALICE, status=400)
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "a.b@c", "public_key": pub}}, token=ALICE,
               version="2.92", status=201)
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "k", "public_key": pub, "type": "ssh"}}, token=ALICE,
               status=400)   # type only from 2.2


async def test_generation_only_before_2_92(api):
    _, body = await call(api, "POST", "/v2.1/os-keypairs", {"keypair": {"name": "gen"}},
                         token=ALICE, version="2.2", status=201)
    kp = body["keypair"]
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert kp["public_key"].startswith("ssh-rsa ") and kp["type"] == "ssh"
    assert kp["fingerprint"] == md5_fingerprint(kp["public_key"])
    _, err = await call(api, "POST", "/v2.1/os-keypairs", {"keypair": {"name": "gen2"}},
                        token=ALICE, version="2.92", status=400)
    assert "'public_key' is a required property" in err["badRequest"]["message"]
    _, body = await call(api, "POST", "/v2.1/os-keypairs",
                         {"keypair": {"name": "cert", "type": "x509"}}, token=ALICE,
                         version="2.2", status=201)
    assert body["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(body["keypair"]["fingerprint"].split(":")) == 20


async def test_admin_user_id_and_pagination(api):
    pub = ssh_public_key()
    for name in ("c", "a", "b"):
        await call(api, "POST", "/v2.1/os-keypairs",
                   {"keypair": {"name": name, "public_key": pub, "user_id": "alice"}},
                   version="2.10", status=201)
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "x", "public_key": pub, "user_id": "bob"}},
               token=ALICE, version="2.10", status=403)
    _, body = await call(api, "GET", "/v2.1/os-keypairs?user_id=alice", version="2.10")
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b", "c"]
    await call(api, "GET", "/v2.1/os-keypairs?user_id=bob", token=ALICE, version="2.10",
               status=403)
    _, body = await call(api, "GET", "/v2.1/os-keypairs?limit=2", token=ALICE,
                         version="2.35", status=200)
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b"]
    assert "marker=b" in body["keypairs_links"][0]["href"]
    _, body = await call(api, "GET", "/v2.1/os-keypairs?marker=b", token=ALICE,
                         version="2.35", status=200)
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["c"]
    await call(api, "GET", "/v2.1/os-keypairs?marker=zz", token=ALICE, version="2.35",
               status=400)


async def test_keypair_quota(make_api):
    api = await make_api({"quota": {"key_pairs": 1}})
    pub = ssh_public_key()
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "one", "public_key": pub}}, token=ALICE, status=200)
    _, err = await call(api, "POST", "/v2.1/os-keypairs",
                        {"keypair": {"name": "two", "public_key": pub}}, token=ALICE,
                        status=403)
    assert err["forbidden"]["message"] == "Quota exceeded, too many key pairs."
    # the limit is per user
    await call(api, "POST", "/v2.1/os-keypairs",
               {"keypair": {"name": "two", "public_key": pub}}, token=BOB, status=200)
