"""The metadata documents of a server booted through the compute API, as Nova
writes them on a config drive (nova/api/metadata/base.py), on both databases."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import update

from cloudd.db import tables as t
from cloudd.services.metadata import documents
from cloudd.services.metadata.documents import OPENSTACK_VERSIONS
from tests.metadata.conftest import USER_DATA

pytestmark = pytest.mark.asyncio


async def docs(md, uuid, **kw):
    async with md.cloud.db.read() as conn:
        return await documents.instance_documents(md.cloud, conn, uuid, **kw)


async def test_config_drive_tree_has_novas_paths(md):
    pub = await md.keypair()
    uuid = await md.server(key_name="alice-key", metadata={"role": "web"})
    await md.plug(uuid, "10.253.0.7")
    files = await docs(md, uuid)
    expected = {"ec2/2009-04-04/meta-data.json", "ec2/2009-04-04/user-data",
                "ec2/latest/meta-data.json", "ec2/latest/user-data"}
    for v in OPENSTACK_VERSIONS + ["latest"]:
        expected |= {f"openstack/{v}/meta_data.json", f"openstack/{v}/user_data"}
        if v >= "2013-10-17":
            expected.add(f"openstack/{v}/vendor_data.json")
        if v >= "2015-10-15":
            expected.add(f"openstack/{v}/network_data.json")
        if v >= "2016-10-06":
            expected.add(f"openstack/{v}/vendor_data2.json")
    assert set(files) == expected
    assert all(isinstance(v, bytes) for v in files.values())

    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == uuid
    assert meta["name"] == "web-1"
    assert meta["hostname"] == "web-1.novalocal"
    assert meta["public_keys"] == {"alice-key": pub}
    assert meta["keys"] == [{"name": "alice-key", "type": "ssh", "data": pub}]
    assert meta["meta"] == {"role": "web"}
    assert meta["project_id"] == "p1"
    assert meta["launch_index"] == 0
    assert meta["availability_zone"] == "nova"
    assert meta["devices"] == [] and meta["dedicated_cpus"] == []
    assert len(base64.b64decode(meta["random_seed"])) == 512
    assert "admin_pass" not in meta
    assert list(meta)[:2] == ["uuid", "meta"]          # Nova's key order

    oldest = json.loads(files["openstack/2012-08-10/meta_data.json"])
    assert "random_seed" not in oldest and "project_id" not in oldest
    assert "devices" not in oldest and oldest["uuid"] == uuid

    assert files["openstack/latest/user_data"] == USER_DATA
    assert files["ec2/latest/user-data"] == USER_DATA
    assert json.loads(files["openstack/latest/vendor_data.json"]) == {}
    assert json.loads(files["openstack/latest/vendor_data2.json"]) == {"static": {}}


async def test_network_data_from_the_instances_ports(md):
    uuid = await md.server(user_data=None)
    dhcp = await md.plug(uuid, "10.253.0.7")
    net2 = await md.subnet("192.168.5.0/24", enable_dhcp=False, gateway_ip="192.168.5.1",
                           dns_nameservers=["192.168.5.53"],
                           host_routes=[{"destination": "10.9.0.0/16",
                                         "nexthop": "192.168.5.254"}])
    static = await md.plug(uuid, "192.168.5.9", network_id=net2)
    files = await docs(md, uuid)
    assert "openstack/latest/user_data" not in files
    net = json.loads(files["openstack/latest/network_data.json"])
    # Links and networks follow the order of the instance's vifs.
    async with md.cloud.db.read() as conn:
        order = (await md.cloud.network.vifs_for_instances(conn, [uuid]))[uuid]
    assert sorted(v["port_id"] for v in order) == sorted([dhcp["port_id"],
                                                          static["port_id"]])
    links = {v["port_id"]: {"id": v["tap"], "vif_id": v["port_id"], "type": "bridge",
                            "mtu": v["mtu"], "ethernet_mac_address": v["mac"]}
             for v in (dhcp, static)}
    assert net["links"] == [links[v["port_id"]] for v in order]
    assert dhcp["tap"] == "tap" + dhcp["port_id"][:11] and dhcp["mtu"] > 0
    nets = {dhcp["port_id"]: {"type": "ipv4_dhcp", "link": dhcp["tap"],
                              "network_id": md.default_network},
            static["port_id"]: {
                "type": "ipv4", "link": static["tap"], "ip_address": "192.168.5.9",
                "netmask": "255.255.255.0",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                            "gateway": "192.168.5.1"},
                           {"network": "10.9.0.0", "netmask": "255.255.0.0",
                            "gateway": "192.168.5.254"}],
                "network_id": net2, "services": [{"type": "dns",
                                                  "address": "192.168.5.53"}]}}
    assert net["networks"] == [{"id": f"network{i}", **nets[v["port_id"]]}
                               for i, v in enumerate(order)]
    assert net["services"] == [{"type": "dns", "address": "192.168.5.53"}]


def test_network_metadata_of_ipv6_and_mixed_vifs():
    """netutils' rules on hand-made vifs: the first IPv4 and IPv6 subnet of each
    vif, SLAAC and static IPv6, DNS services de-duplicated, vifs without
    subnets skipped."""
    vif = {"port_id": "p1", "mac": "fa:16:3e:00:00:01", "network_id": "n1",
           "tap": "tapp1", "mtu": 1450, "subnets": [
               {"ip_version": 6, "cidr": "2001:db8::/64", "gateway_ip": "2001:db8::1",
                "enable_dhcp": True, "ipv6_address_mode": "slaac",
                "dns_nameservers": ["2001:db8::53"], "host_routes": [],
                "ips": ["2001:db8::f816:3eff:fe00:1"]},
               {"ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": None,
                "enable_dhcp": False, "dns_nameservers": ["2001:db8::53"],
                "host_routes": [], "ips": ["10.0.0.5"]}]}
    empty = {"port_id": "p0", "mac": "fa:16:3e:00:00:00", "network_id": "n0",
             "tap": "tapp0", "mtu": 1500, "subnets": []}
    net = documents.network_metadata([empty, vif])
    assert [link["id"] for link in net["links"]] == ["tapp1"]
    assert net["networks"] == [
        {"id": "network0", "type": "ipv4", "link": "tapp1", "ip_address": "10.0.0.5",
         "netmask": "255.255.255.0", "routes": [], "network_id": "n1",
         "services": [{"type": "dns", "address": "2001:db8::53"}]},
        {"id": "network1", "type": "ipv6_slaac", "link": "tapp1",
         "ip_address": "2001:db8::f816:3eff:fe00:1",
         "netmask": "ffff:ffff:ffff:ffff::",
         "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}],
         "network_id": "n1", "services": [{"type": "dns", "address": "2001:db8::53"}]}]
    assert net["services"] == [{"type": "dns", "address": "2001:db8::53"}]
    assert documents.network_metadata([]) is None


async def test_ec2_meta_data_json(md):
    pub = await md.keypair()
    uuid = await md.server(key_name="alice-key", security_groups=[{"name": "default"}])
    await md.plug(uuid, "10.253.0.7")
    files = await docs(md, uuid)
    ec2 = json.loads(files["ec2/latest/meta-data.json"])
    assert ec2 == json.loads(files["ec2/2009-04-04/meta-data.json"])
    assert ec2["instance-id"] == "i-" + uuid.replace("-", "")[:8]
    assert ec2["hostname"] == ec2["local-hostname"] == "web-1.novalocal"
    assert ec2["local-ipv4"] == "10.253.0.7"
    assert ec2["public-ipv4"] == ""
    assert ec2["public-keys"] == {"0": {"openssh-key": pub}}    # no _name on the drive
    assert ec2["placement"] == {"availability-zone": "nova"}
    assert ec2["instance-type"] == "m1.tiny"
    assert ec2["security-groups"] == ["default"]
    assert ec2["block-device-mapping"] == {"ami": "vda", "root": "/dev/vda"}
    assert ec2["ami-launch-index"] == 0 and ec2["instance-action"] == "none"
    assert ec2["reservation-id"].startswith("r-")


async def test_admin_pass_only_when_given_and_no_keys_without_keypair(md):
    uuid = await md.server(user_data=None)
    files = await docs(md, uuid, admin_pass="s3cret")
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["admin_pass"] == "s3cret"
    assert "public_keys" not in meta and "keys" not in meta and "meta" not in meta
    assert "public-keys" not in json.loads(files["ec2/latest/meta-data.json"])
    assert json.loads(files["openstack/latest/network_data.json"]) == {}   # no vifs
    assert "ec2/latest/user-data" not in files


async def test_a_deleted_or_unknown_instance_has_no_documents(md):
    uuid = await md.server()
    assert await docs(md, "00000000-0000-0000-0000-000000000000") == {}
    async with md.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(deleted=True))
    assert await docs(md, uuid) == {}


async def test_config_drive_spec_round_trip(md):
    uuid = await md.server()
    files = await docs(md, uuid)
    spec = documents.config_drive_spec(files)
    assert json.loads(json.dumps(spec)) == spec                  # fits the wire
    assert documents.files_from_spec(spec) == files


async def test_dhcp_domain_and_vendor_data_from_config(make_api, tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from cloudd.web.app import build_root
    from tests.metadata.conftest import MetadataCloud
    vendor = tmp_path / "vendor.json"
    vendor.write_text(json.dumps({"cloud-init": "#cloud-config\npackages: [htop]\n"}))
    api = await make_api({"metadata": {"dhcp_domain": "",
                                       "vendordata_jsonfile_path": str(vendor)}})
    api.cloud.compute.wake = lambda task_id: None
    root = TestClient(TestServer(build_root(api.cloud)))
    await root.start_server()
    try:
        md = await MetadataCloud(api, root).start()
        uuid = await md.server("Web 1")
        await md.plug(uuid, "10.253.0.7")
        files = await docs(md, uuid)
        assert json.loads(files["openstack/latest/meta_data.json"])["hostname"] == "web-1"
        assert json.loads(files["ec2/latest/meta-data.json"])["hostname"] == "web-1"
        assert json.loads(files["openstack/latest/vendor_data.json"]) == json.loads(
            vendor.read_text())
        assert json.loads(files["openstack/latest/vendor_data2.json"]) == {
            "static": json.loads(vendor.read_text())}
        status, body, _ = await md.get("openstack/latest/vendor_data.json")
        assert status == 200 and json.loads(body) == json.loads(vendor.read_text())
        vendor.write_text("not json")                   # a broken file serves {}
        assert json.loads((await docs(md, uuid))["openstack/latest/vendor_data.json"]) == {}
    finally:
        await root.close()


async def test_block_device_mapping_follows_the_flavors_disks(md):
    from tests.compute.conftest import call
    await call(md.api, "POST", "/v2.1/flavors", {"flavor": {
        "name": "eph", "id": "eph", "ram": 256, "vcpus": 1, "disk": 1,
        "OS-FLV-EXT-DATA:ephemeral": 1, "swap": 128}}, status=200)
    uuid = await md.server(flavorRef="eph")
    ec2 = json.loads((await docs(md, uuid))["ec2/latest/meta-data.json"])
    assert ec2["block-device-mapping"] == {"ami": "vda", "root": "/dev/vda",
                                           "ephemeral0": "/dev/vdb", "swap": "/dev/vdc"}
    assert ec2["instance-type"] == "eph"
