"""The config drive: an ISO 9660 image labelled config-2 with Nova's tree,
read back through Rock Ridge and Joliet (pycdlib) and identified by blkid."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pycdlib
import pytest

from cloudd.agent import configdrive
from cloudd.services.metadata import documents
from tests.metadata.conftest import USER_DATA, need


@pytest.mark.asyncio
async def test_an_instances_documents_make_a_config_2_drive(md, tmp_path):
    pub = await md.keypair()
    uuid = await md.server(key_name="alice-key")
    await md.plug(uuid, "10.253.0.7")
    async with md.cloud.db.read() as conn:
        files = await documents.instance_documents(md.cloud, conn, uuid, admin_pass="pw")
    # As the agent gets them: through the spawn spec's base64 wire form.
    spec = json.loads(json.dumps(documents.config_drive_spec(files)))
    path = await configdrive.build_from_spec(spec, tmp_path / "disk.config")
    assert os.stat(path).st_mode & 0o777 == 0o600          # user data, admin password
    label, read = configdrive.read_iso(path)
    assert label == "config-2"
    assert read == files
    meta = json.loads(read["openstack/latest/meta_data.json"])
    assert meta["uuid"] == uuid and meta["public_keys"] == {"alice-key": pub}
    assert meta["admin_pass"] == "pw"
    assert read["openstack/latest/user_data"] == USER_DATA

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/openstack/latest/network_data.json")
        assert json.loads(buf.getvalue())["networks"][0]["network_id"] == md.default_network
    finally:
        iso.close()


def test_blkid_sees_an_iso9660_labelled_config_2(tmp_path):
    """What cloud-init's config drive search (blkid -t LABEL=config-2) sees."""
    need("blkid")
    path = tmp_path / "disk.config"
    configdrive.write_iso({"openstack/latest/meta_data.json": b"{}"}, path)
    out = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True,
                         text=True, check=True).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines())
    assert fields["TYPE"] == "iso9660" and fields["LABEL"] == "config-2"


def test_long_and_similar_names_stay_distinct(tmp_path):
    files = {"openstack/latest/vendor_data.json": b"a", "openstack/latest/vendor_data2.json": b"b",
             "openstack/latest/a-very-long-file-name-indeed-longer-than-thirty.json": b"c",
             "openstack/latest/a-very-long-file-name-indeed-longer-than-thirty.txt": b"d",
             "ec2/2009-04-04/meta-data.json": b"e", "ec2/latest/user-data": b""}
    path = tmp_path / "d.iso"
    configdrive.write_iso(files, path)
    assert configdrive.read_iso(path) == ("config-2", files)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "", "a//b/", "./a"])
def test_paths_outside_the_drive_are_refused(tmp_path, bad):
    with pytest.raises(configdrive.ConfigDriveError):
        configdrive.write_iso({bad: b"x"}, tmp_path / "d.iso")
    assert not (tmp_path / "d.iso").exists()


def test_rebuilding_replaces_the_drive(tmp_path):
    path = tmp_path / "disk.config"
    configdrive.write_iso({"openstack/latest/meta_data.json": b"old"}, path)
    configdrive.write_iso({"openstack/latest/meta_data.json": b"new"}, path)
    assert configdrive.read_iso(path)[1] == {"openstack/latest/meta_data.json": b"new"}
    assert sorted(os.listdir(tmp_path)) == ["disk.config"]


def test_a_name_that_is_both_file_and_directory_is_refused(tmp_path):
    with pytest.raises(configdrive.ConfigDriveError, match="both a file and a directory"):
        configdrive.write_iso({"openstack/latest": b"x", "openstack/latest/meta_data.json": b""},
                              tmp_path / "d.iso")


@pytest.mark.parametrize("bad", [None, {}, {"files": "x"}, {"files": {"a": "not base64!"}}])
def test_a_bad_spec_is_a_config_drive_error(bad):
    with pytest.raises(configdrive.ConfigDriveError):
        configdrive.files_from_spec(bad)


@pytest.mark.asyncio
async def test_isoinfo_reads_the_drive_as_genisoimage_would_write_it(md, tmp_path):
    """A second, independent ISO 9660 reader (genisoimage's isoinfo): the label,
    Rock Ridge and Joliet, and every file by its real name."""
    need("isoinfo")
    await md.keypair()
    uuid = await md.server(key_name="alice-key")
    await md.plug(uuid, "10.253.0.7")
    async with md.cloud.db.read() as conn:
        files = await documents.instance_documents(md.cloud, conn, uuid)
    path = await configdrive.build_from_spec(documents.config_drive_spec(files),
                                             tmp_path / "disk.config")

    def isoinfo(*args: str) -> bytes:
        return subprocess.run(["isoinfo", *args, "-i", str(path)], check=True,
                              capture_output=True, timeout=60).stdout

    info = isoinfo("-d").decode()
    assert "Volume id: config-2" in info
    assert "Rock Ridge signatures" in info and "Joliet" in info
    rr_names = {line.lstrip("/") for line in isoinfo("-R", "-f").decode().split()}
    assert set(files) <= rr_names
    assert {line.lstrip("/") for line in isoinfo("-J", "-f").decode().split()} == rr_names
    for name, data in files.items():
        assert isoinfo("-R", "-x", "/" + name) == data, name
