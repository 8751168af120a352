"""Fixtures for the metadata tests, on SQLite and PostgreSQL.

``md`` is a noauth2 cloud (the compute API tests' ``make_api``) with its real
network service (``cloud.network``, the shared ``default`` network made on
start) and:

- ``md.api``: the compute API client (servers are created through it);
- ``md.root``: a client on the controller's main application, where the
  agents' ``/agent/v1/metadata`` endpoint and the Network API are;
- ``await md.server(...)``: a server booted through the API with a keypair,
  user data and metadata, then placed on a host as the conductor would;
- ``await md.plug(uuid, ip, network_id=..., host=...)``: its port with that
  fixed IP, bound to the host, made by the network service as the build does;
- ``await md.subnet(cidr, **fields)``: a new shared network with one subnet
  (Network API), its network id.
"""

from __future__ import annotations

import base64
import os
import shutil
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.compute import agent_auth
from cloudd.services.network.bootstrap import ensure_default_network
from cloudd.web.app import build_root
from tests.compute.conftest import IMAGE, backend, call, make_api  # noqa: F401

ALICE = "alice:p1"
USER_DATA = b"#cloud-config\nruncmd:\n - echo hello from cloudd\n"


def need(*tools: str, root: bool = False) -> None:
    """Skip (fail on CI, where the Makefile installs them) without these tools."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    why = []
    if missing:
        why.append(f"{', '.join(missing)} not installed (make test-system-deps)")
    if root and os.geteuid() != 0:
        why.append("needs root")
    if why:
        message = "; ".join(why)
        if os.environ.get("CI") and missing:
            pytest.fail(message)
        pytest.skip(message)


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " alice@laptop"


class MetadataCloud:
    def __init__(self, api, root) -> None:
        self.api = api
        self.root = root
        self.cloud = api.cloud
        self.secrets: dict[str, str] = {}
        self.default_network: str | None = None

    async def start(self) -> MetadataCloud:
        self.default_network = await ensure_default_network(self.cloud)
        return self

    async def neutron(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = await self.root.request(method, "/network" + path, json=body,
                                       headers={"X-Auth-Token": "admin"})
        data = await resp.json()
        assert resp.status in (200, 201), (resp.status, data)
        return data

    async def subnet(self, cidr: str, **fields) -> str:
        """A new shared network with one IPv4 subnet; its id."""
        net = (await self.neutron("POST", "/v2.0/networks", {"network": {
            "name": f"net-{cidr}", "shared": True}}))["network"]
        await self.neutron("POST", "/v2.0/subnets", {"subnet": {
            "network_id": net["id"], "ip_version": 4, "cidr": cidr, **fields}})
        return net["id"]

    async def plug(self, uuid: str, ip: str, *, network_id: str | None = None,
                   host: str = "h1") -> dict:
        """The instance's port with ``ip``, bound to ``host`` (its vif)."""
        async with self.cloud.db.write() as conn:
            [vif] = await self.cloud.network.allocate_for_instance(
                conn, instance_uuid=uuid, project_id="p1", host=host, zone="nova",
                requested=[{"uuid": network_id or self.default_network, "fixed_ip": ip}],
                security_groups=["default"])
        return vif

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
        # No ports at create ("none", 2.37): the tests plug them where they want.
        server = {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}
        server.update(extra)
        if key_name:
            server["key_name"] = key_name
        if user_data is not None:
            server["user_data"] = base64.b64encode(user_data).decode()
        if metadata is not None:
            server["metadata"] = metadata
        _, body = await call(self.api, "POST", "/v2.1/servers", {"server": server},
                             token=token, version="2.37", status=202)
        uuid = body["server"]["id"]
        async with self.cloud.db.write() as conn:
            await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
                host=host, node=host, availability_zone="nova", vm_state="active",
                task_state=None, power_state=1,
                launched_at=datetime.now(UTC).replace(tzinfo=None)))
        return uuid

    async def get(self, path: str, *, host: str = "h1", network_id: str | None = None,
                  address: str | None = "10.253.0.7", auth: str | None = None):
        """GET /agent/v1/metadata/PATH as host's agent (on the default network
        unless told); returns (status, body, media type)."""
        headers = {"Authorization": auth or await self.credential(host),
                   "X-Cloudd-Network-Id": self.default_network if network_id is None
                   else network_id}
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
        yield await MetadataCloud(api, root).start()
    finally:
        await root.close()
