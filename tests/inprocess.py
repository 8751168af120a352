"""noauth2 Clouds in this process, each served by an aiohttp TestClient on one
API's listener: the shared body of the per-API ``make_api`` fixtures."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from cloudd.config import Config
from cloudd.server import Cloud
from cloudd.web.app import build_listener


class Clouds:
    def __init__(self, backend: str, database_url, tmp_path) -> None:
        self.backend = backend
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.started: list[tuple[TestClient, Cloud]] = []

    async def start(self, listener: str, sections: dict | None = None) -> TestClient:
        """A started Cloud (client.cloud) with ``sections`` added to the config."""
        data = self.tmp_path / f"data{len(self.started)}"
        cfg = Config.model_validate({
            "server": {"data_dir": str(data)},
            "database": {"url": self.database_url(self.backend, data)},
            "auth": {"strategy": "noauth2"},
            "identity": {"password_hash_rounds": 4},
            "compute": {"local_agent": "none"},
            **(sections or {})})
        cloud = Cloud(cfg)
        await cloud.start()
        client = TestClient(TestServer(build_listener(cloud, listener)))
        await client.start_server()
        client.cloud = cloud
        self.started.append((client, cloud))
        return client

    async def close(self) -> None:
        for client, cloud in reversed(self.started):
            await client.close()
            await cloud.stop(5)
