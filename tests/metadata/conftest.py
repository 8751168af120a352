"""Fixtures for the metadata tests, on SQLite and PostgreSQL.

``md`` is a noauth2 cloud (the compute API tests' ``make_api``) with:

- ``md.api``: the compute API client (servers are created through it);
- ``md.root``: a client on the controller's main application, where the
  agents' ``/agent/v1/metadata`` endpoint is;
- ``md.network``: a stand-in for the network service (``vifs_for_instances``
  in the contract's vif shape, the other calls no-ops), installed as
  ``cloud.network`` so these tests do not depend on the Neutron API's
  tables; ``md.network.plug(uuid, network_id, ip)`` gives an instance a vif;
- ``await md.server(...)``: a server booted through the API with a keypair,
  user data and metadata, then placed on a host as the conductor would.
"""

from __future__ import annotations

import base64
import uuid as uuidlib
from datetime import UTC, datetime

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.compute import agent_auth
from cloudd.web.app import build_root
from tests.compute.conftest import IMAGE, backend, call, make_api  # noqa: F401

ALICE = "alice:p1"
USER_DATA = b"#cloud-config\nruncmd:\n - echo hello from cloudd\n"
NETWORK = "5b2a9e48-1c1e-4a43-9d3f-3f1f3a7b0c11"
OTHER_NETWORK = "0d4f0c8e-7f7e-4b8a-8f5e-2b0d8e3c4a22"


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " alice@laptop"


def vif(network_id: str, ip: str, *, port_id: str | None = None, dhcp: bool = True) -> dict:
    port_id = port_id or str(uuidlib.uuid4())
    return {"port_id": port_id, "mac": "fa:16:3e:12:34:56", "network_id": network_id,
            "network_name": "default", "bridge": f"cdbr-{network_id[:10]}",
            "tap": f"tap{port_id[:11]}", "mtu": 1450, "network_type": "local",
            "physical_network": None, "segmentation_id": None,
            "host_address": "10.253.0.1/24", "nat": True,
            "subnets": [{"id": str(uuidlib.uuid4()), "cidr": "10.253.0.0/24", "ip_version": 4,
                         "gateway_ip": "10.253.0.1", "dns_nameservers": ["10.253.0.1"],
                         "host_routes": [], "enable_dhcp": dhcp, "ips": [ip]}],
            "port_security_enabled": True, "security_group_rules": []}


class StubNetwork:
    """The network service's vifs_for_instances, from a dict."""

    def __init__(self) -> None:
        self.vifs: dict[str, list[dict]] = {}

    def plug(self, instance_uuid: str, network_id: str, ip: str, **kw) -> dict:
        v = vif(network_id, ip, **kw)
        self.vifs.setdefault(instance_uuid, []).append(v)
        return v

    async def vifs_for_instances(self, conn, instance_uuids):
        return {u: [dict(v) for v in self.vifs.get(u, [])] for u in instance_uuids}

    # The rest of the contract, as no-ops: the servers API and flows call them.
    async def validate_requested(self, conn, project_id, requested) -> None:
        return None

    async def allocate_for_instance(self, conn, *, instance_uuid, **kw) -> list[dict]:
        return self.vifs.get(instance_uuid, [])

    async def deallocate_for_instance(self, conn, instance_uuid) -> None:
        return None

    async def instances_for_security_group(self, conn, group_id) -> list:
        return []


class MetadataCloud:
    def __init__(self, api, root) -> None:
        self.api = api
        self.root = root
        self.cloud = api.cloud
        self.network = StubNetwork()
        self.cloud.network = self.network
        self.secrets: dict[str, str] = {}

    async def credential(self, host: str) -> str:
        """``Bearer HOST:SECRET`` for a host (issued once)."""
        if host not in self.secrets:
            self.secrets[host], _ = await agent_auth.issue(self.cloud.db, host, rounds=4)
        return f"Bearer {host}:{self.secrets[host]}"

    async def keypair(self, name: str = "alice-key", token: str = ALICE) -> str:
        pub = ssh_public_key()
        await call(self.api, "POST", "/v2.1/os-keypairs",
                   {"keypair": {"name": name, "public_key": pub}}, token=token, status=200)
        return pub

    async def server(self, name: str = "web-1", *, host: str = "h1", key_name: str | None = None,
                     user_data: bytes | None = USER_DATA, metadata: dict | None = None,
                     token: str = ALICE, **extra) -> str:
        server = {"name": name, "imageRef": IMAGE, "flavorRef": "1"}
        server.update(extra)
        if key_name:
            server["key_name"] = key_name
        if user_data is not None:
            server["user_data"] = base64.b64encode(user_data).decode()
        if metadata is not None:
            server["metadata"] = metadata
        _, body = await call(self.api, "POST", "/v2.1/servers", {"server": server},
                             token=token, status=202)
        uuid = body["server"]["id"]
        async with self.cloud.db.write() as conn:
            await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
                host=host, node=host, availability_zone="nova", vm_state="active",
                task_state=None, power_state=1,
                launched_at=datetime.now(UTC).replace(tzinfo=None)))
        return uuid

    async def get(self, path: str, *, host: str = "h1", network_id: str = NETWORK,
                  address: str | None = "10.253.0.7", auth: str | None = None):
        """GET /agent/v1/metadata/PATH as host's agent; returns (status, body, type)."""
        headers = {"Authorization": auth or await self.credential(host),
                   "X-Cloudd-Network-Id": network_id}
        if address is not None:
            headers["X-Forwarded-For"] = address
        resp = await self.root.get("/agent/v1/metadata/" + path.lstrip("/"), headers=headers)
        return resp.status, await resp.read(), resp.content_type


@pytest_asyncio.fixture
async def md(make_api):  # noqa: F811
    api = await make_api()
    api.woken = []
    api.cloud.compute.wake = api.woken.append        # no conductor: we place servers
    root = TestClient(TestServer(build_root(api.cloud)))
    await root.start_server()
    try:
        yield MetadataCloud(api, root)
    finally:
        await root.close()
