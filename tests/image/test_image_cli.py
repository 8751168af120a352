"""Images through the real `openstack` CLI against a running `cloudd serve`
(Keystone tokens and policy), on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os

import pytest


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> tuple[str, bytes]:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path_factory.mktemp("img") / "disk.raw"
    path.write_bytes(data)
    return str(path), data


def test_image_lifecycle(osc, payload, tmp_path):
    path, data = payload
    image = osc.json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                     "--file", path, "--property", "os_distro=debian", "cli-image")
    assert image["name"] == "cli-image"
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    listed = osc.json("image", "list")
    assert any(i["ID"] == image["id"] and i["Status"] == "active" for i in listed)
    shown = osc.json("image", "show", image["id"])
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["properties"]["os_distro"] == "debian"
    out = tmp_path / "saved.raw"
    osc.run("image", "save", "--file", str(out), image["id"])
    assert out.read_bytes() == data
    osc.run("image", "set", "--property", "hw_disk_bus=virtio", "--min-ram", "128",
            "--tag", "cli", image["id"])
    shown = osc.json("image", "show", "cli-image")
    assert shown["properties"]["hw_disk_bus"] == "virtio"
    assert shown["min_ram"] == 128 and shown["tags"] == ["cli"]
    osc.run("image", "set", "--protected", image["id"])
    refused = osc.run("image", "delete", image["id"], check=False)
    assert refused.returncode != 0
    osc.run("image", "set", "--unprotected", image["id"])
    osc.run("image", "delete", image["id"])
    gone = osc.run("image", "show", image["id"], check=False)
    assert gone.returncode != 0


def test_bad_format_is_refused(osc, tmp_path):
    fake = tmp_path / "fake.qcow2"
    fake.write_bytes(b"this is not a qcow2 image" * 100)
    res = osc.run("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                  "--file", str(fake), "fake-qcow2", check=False)
    assert res.returncode != 0
    images = osc.json("image", "list", "--long")
    assert all(i["Status"] != "active" for i in images if i["Name"] == "fake-qcow2")
