"""The metadata documents of one instance, as Nova serves them.

Nova's ``InstanceMetadata`` (nova/api/metadata/base.py) with the network
document of nova/virt/netutils.py, built from cloudd's rows: the instance,
its metadata items, its keypair, and its vifs from the network service
(``cloud.network.vifs_for_instances``; the vif shape is in
docs/network-design.md).

- ``instance_documents(cloud, conn, uuid)`` gives the config drive's files,
  {path: bytes}, exactly the paths Nova's ``metadata_for_config_drive``
  yields: ``ec2/2009-04-04/meta-data.json`` and ``ec2/latest/...`` (Nova
  skips the older EC2 versions by default), then for every OpenStack version
  ``openstack/VERSION/meta_data.json``, ``user_data`` (when there is some),
  ``vendor_data.json``, ``network_data.json`` and ``vendor_data2.json``.
- ``instance_metadata(cloud, conn, uuid)`` gives the ``InstanceMetadata``
  the metadata service answers paths from (``tree.lookup``).

EC2 ids: Nova derives ``i-%08x`` / ``ami-%08x`` from integer database ids
cloudd does not have; cloudd uses the first 32 bits of the uuid instead, so
the ids are stable and the same in both trees.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import logging
import os
import uuid as uuidlib
import zlib
from dataclasses import dataclass, field

from sqlalchemy import select

from cloudd.db import tables as t

log = logging.getLogger("cloudd.metadata")

# EC2 versions (nova/api/metadata/base.py VERSIONS).
VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
            "2008-02-01", "2008-09-01", "2009-04-04"]

FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"
HAVANA = "2013-10-17"
LIBERTY = "2015-10-15"
NEWTON_ONE = "2016-06-30"
NEWTON_TWO = "2016-10-06"
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
VICTORIA = "2020-10-14"
EPOXY = "2025-04-04"
OPENSTACK_VERSIONS = [FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA,
                      ROCKY, VICTORIA, EPOXY]

# Nova's [api] config_drive_skip_versions default leaves these EC2 versions.
CONFIG_DRIVE_EC2_VERSIONS = ["2009-04-04", "latest"]
# Nova's [api] dhcp_domain default ([metadata] dhcp_domain): NAME.novalocal.
DHCP_DOMAIN = "novalocal"

MD_JSON_NAME = "meta_data.json"
VD_JSON_NAME = "vendor_data.json"
VD2_JSON_NAME = "vendor_data2.json"
NW_JSON_NAME = "network_data.json"
UD_NAME = "user_data"
PASS_NAME = "password"
TEXT = "text/plain"
JSON = "application/json"


class NotFound(Exception):
    """No such metadata path (Nova's InvalidMetadataPath / InvalidMetadataVersion)."""


def dumps(value) -> bytes:
    """oslo's jsonutils.dump_as_bytes: json.dumps with its default separators."""
    return json.dumps(value).encode()


def ec2_id(value: str | None, prefix: str) -> str:
    """``i-0123abcd`` from a uuid (its first 32 bits), else from a CRC of the text."""
    if not value:
        return f"{prefix}-00000000"
    try:
        number = int(uuidlib.UUID(value).hex[:8], 16)
    except ValueError:
        number = zlib.crc32(value.encode())
    return f"{prefix}-{number:08x}"


@dataclass
class Facts:
    """What the documents are made from: one instance's rows and vifs."""

    uuid: str
    name: str
    hostname: str
    project_id: str
    launch_index: int = 0
    availability_zone: str | None = None
    reservation_id: str = ""
    image_ref: str = ""
    image_properties: dict = field(default_factory=dict)
    flavor: dict = field(default_factory=dict)
    key_name: str | None = None
    key_data: str | None = None
    key_type: str = "ssh"
    user_data: bytes | None = None
    meta: dict = field(default_factory=dict)
    security_groups: list = field(default_factory=list)
    vifs: list = field(default_factory=list)


def _loads(value) -> dict:
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _user_data(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return value.encode()


async def load(cloud, conn, instance_uuid: str) -> Facts | None:
    """The Facts of a live (not deleted) instance, or None."""
    inst = (await conn.execute(select(t.instance).where(
        t.instance.c.uuid == instance_uuid, t.instance.c.deleted.is_(False)))).first()
    if inst is None:
        return None
    meta = {r.meta_key: r.meta_value for r in await conn.execute(
        select(t.instance_metadata.c.meta_key, t.instance_metadata.c.meta_value)
        .where(t.instance_metadata.c.instance_uuid == instance_uuid)
        .order_by(t.instance_metadata.c.meta_key))}
    key_type = "ssh"
    if inst.key_name:
        key = (await conn.execute(select(t.keypair.c.key_type, t.keypair.c.public_key).where(
            t.keypair.c.user_id == inst.user_id, t.keypair.c.name == inst.key_name))).first()
        if key is not None and key.public_key == inst.key_data:
            key_type = key.key_type
    spec = _loads(inst.request_spec)
    image = spec.get("image") if isinstance(spec.get("image"), dict) else {}
    groups = spec.get("security_groups", ["default"])
    vifs: list = []
    network = getattr(cloud, "network", None)
    if network is not None:
        vifs = (await network.vifs_for_instances(conn, [instance_uuid])).get(
            instance_uuid) or []
    return Facts(
        uuid=inst.uuid, name=inst.display_name, hostname=inst.hostname or "",
        project_id=inst.project_id, launch_index=inst.launch_index or 0,
        availability_zone=inst.availability_zone, reservation_id=inst.reservation_id,
        image_ref=inst.image_ref or "",
        image_properties=dict(image.get("properties") or {}),
        flavor=_loads(inst.flavor), key_name=inst.key_name, key_data=inst.key_data,
        key_type=key_type, user_data=_user_data(inst.user_data), meta=meta,
        security_groups=list(groups) if isinstance(groups, list) else [],
        vifs=list(vifs))


# --- network_data.json (nova/virt/netutils.py get_network_metadata) -------------------

def _first_subnet(vif: dict, version: int) -> dict | None:
    return next((s for s in vif.get("subnets") or [] if s.get("ip_version") == version), None)


def _dns_services(subnet: dict) -> list[dict]:
    return [{"type": "dns", "address": a} for a in subnet.get("dns_nameservers") or []]


def _default_route(version: int, subnet: dict) -> list[dict]:
    gateway = subnet.get("gateway_ip")
    if not gateway:
        return []
    any_ = "0.0.0.0" if version == 4 else "::"
    return [{"network": any_, "netmask": any_, "gateway": gateway}]


def _net(vif: dict, subnet: dict, version: int, num: int, link_id: str) -> dict:
    mode = subnet.get("ipv6_address_mode")
    if not mode and subnet.get("enable_dhcp"):
        return {"id": f"network{num}", "type": f"ipv{version}_dhcp", "link": link_id,
                "network_id": vif.get("network_id")}
    cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
    routes = _default_route(version, subnet)
    for route in subnet.get("host_routes") or []:
        dest = ipaddress.ip_network(route["destination"], strict=False)
        routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                       "gateway": route["nexthop"]})
    return {"id": f"network{num}", "type": f"ipv{version}" + (f"_{mode}" if mode else ""),
            "link": link_id, "ip_address": subnet["ips"][0], "netmask": str(cidr.netmask),
            "routes": routes, "network_id": vif.get("network_id"),
            "services": _dns_services(subnet)}


def network_metadata(vifs: list[dict]) -> dict | None:
    """network_data.json's links, networks and services (None without vifs)."""
    if not vifs:
        return None
    links: list[dict] = []
    nets: list[dict] = []
    services: list[dict] = []
    ifc_num = net_num = -1
    for vif in vifs:
        if not vif.get("subnets"):
            continue
        v4, v6 = _first_subnet(vif, 4), _first_subnet(vif, 6)
        ifc_num += 1
        if not (v4 or v6):
            continue
        link = {"id": vif.get("tap") or f"interface{ifc_num}", "vif_id": vif.get("port_id"),
                "type": "bridge", "mtu": vif.get("mtu"),
                "ethernet_mac_address": vif.get("mac")}
        links.append(link)
        for version, subnet in ((4, v4), (6, v6)):
            if subnet and subnet.get("ips"):
                net_num += 1
                nets.append(_net(vif, subnet, version, net_num, link["id"]))
                services += [s for s in _dns_services(subnet) if s not in services]
    return {"links": links, "networks": nets, "services": services}


def fixed_ips(vifs: list[dict], version: int = 4) -> list[str]:
    return [ip for vif in vifs for s in vif.get("subnets") or []
            if s.get("ip_version") == version for ip in s.get("ips") or []]


# --- the documents -----------------------------------------------------------------

def _at_least(required: str, requested: str, versions: list[str]) -> bool:
    return versions.index(requested) >= versions.index(required)


class InstanceMetadata:
    """One instance's metadata (Nova's InstanceMetadata), from its Facts.

    ``address`` is the address the request came from (the EC2 tree's
    local-ipv4 when the instance has no fixed IPv4); ``extra_md`` is merged
    into meta_data.json (the config drive's ``admin_pass``).
    """

    def __init__(self, facts: Facts, *, address: str | None = None,
                 extra_md: dict | None = None, dhcp_domain: str = DHCP_DOMAIN,
                 vendor_data: dict | None = None) -> None:
        self.facts = facts
        self.address = address
        self.extra_md = extra_md or {}
        self.dhcp_domain = dhcp_domain
        self.vendor_data = vendor_data or {}
        self.network = network_metadata(facts.vifs)
        self.fixed_ips = fixed_ips(facts.vifs)

    @property
    def userdata_raw(self) -> bytes | None:
        return self.facts.user_data

    def hostname(self) -> str:
        name = self.facts.hostname
        return f"{name}.{self.dhcp_domain}" if self.dhcp_domain else name

    def block_device_mapping(self) -> dict:
        """nova/block_device.py instance_block_mapping for cloudd's virtio disks
        (the libvirt driver's vda, then vdb for ephemeral, then swap)."""
        out = {"ami": "vda", "root": "/dev/vda"}
        ephemeral = int(self.facts.flavor.get("ephemeral_gb") or 0)
        if ephemeral:
            out["ephemeral0"] = "/dev/vdb"
        if int(self.facts.flavor.get("swap") or 0):
            out["swap"] = "/dev/vdc" if ephemeral else "/dev/vdb"
        return out

    # EC2 -----------------------------------------------------------------------
    def ec2_metadata(self, version: str) -> dict:
        """{"meta-data": {...}, "user-data"?: bytes} of one EC2 version."""
        if version == "latest":
            version = VERSIONS[-1]
        if version not in VERSIONS:
            raise NotFound(version)
        f = self.facts
        hostname = self.hostname()
        md: dict = {
            "ami-id": ec2_id(f.image_ref, "ami"),
            "ami-launch-index": f.launch_index,
            "ami-manifest-path": "FIXME",
            "instance-id": ec2_id(f.uuid, "i"),
            "hostname": hostname,
            "local-ipv4": (self.fixed_ips[0] if self.fixed_ips else "") or self.address,
            "reservation-id": f.reservation_id,
            "security-groups": list(f.security_groups)}
        if f.key_name:
            md["public-keys"] = {"0": {"_name": "0=" + f.key_name,
                                       "openssh-key": f.key_data}}
        if _at_least("2007-01-19", version, VERSIONS):
            md["local-hostname"] = hostname
            md["public-hostname"] = hostname
            md["public-ipv4"] = ""
        if _at_least("2007-08-29", version, VERSIONS):
            md["instance-type"] = f.flavor.get("name")
        if _at_least("2007-12-15", version, VERSIONS):
            md["block-device-mapping"] = self.block_device_mapping()
            for prop, key, prefix in (("kernel_id", "kernel-id", "aki"),
                                      ("ramdisk_id", "ramdisk-id", "ari")):
                if f.image_properties.get(prop):
                    md[key] = ec2_id(f.image_properties[prop], prefix)
        if _at_least("2008-02-01", version, VERSIONS):
            md["placement"] = {"availability-zone": f.availability_zone}
        if _at_least("2008-09-01", version, VERSIONS):
            md["instance-action"] = "none"
        data: dict = {"meta-data": md}
        if self.userdata_raw is not None:
            data["user-data"] = self.userdata_raw
        return data

    # OpenStack -----------------------------------------------------------------
    @staticmethod
    def os_version(version: str) -> str:
        if version == "latest":
            return OPENSTACK_VERSIONS[-1]
        if version not in OPENSTACK_VERSIONS:
            raise NotFound(version)
        return version

    def meta_data(self, version: str) -> dict:
        version = self.os_version(version)
        f = self.facts
        md: dict = {"uuid": f.uuid}
        if f.meta:
            md["meta"] = dict(f.meta)
        md.update(self.extra_md)
        if f.key_name and f.key_data is not None:
            md["public_keys"] = {f.key_name: f.key_data}
            md["keys"] = [{"name": f.key_name, "type": f.key_type, "data": f.key_data}]
        md["hostname"] = self.hostname()
        md["name"] = f.name
        md["launch_index"] = f.launch_index
        md["availability_zone"] = f.availability_zone
        if _at_least(GRIZZLY, version, OPENSTACK_VERSIONS):
            md["random_seed"] = base64.b64encode(os.urandom(512)).decode()
        if _at_least(LIBERTY, version, OPENSTACK_VERSIONS):
            md["project_id"] = f.project_id
        if _at_least(NEWTON_ONE, version, OPENSTACK_VERSIONS):
            md["devices"] = []
        if _at_least(VICTORIA, version, OPENSTACK_VERSIONS):
            md["dedicated_cpus"] = []
        return md

    def version_listing(self, version: str) -> list[str]:
        """What /openstack/VERSION lists (Nova's _handle_version)."""
        version = self.os_version(version)
        out = [MD_JSON_NAME]
        if self.userdata_raw is not None:
            out.append(UD_NAME)
        if _at_least(GRIZZLY, version, OPENSTACK_VERSIONS):
            out.append(PASS_NAME)
        if _at_least(HAVANA, version, OPENSTACK_VERSIONS):
            out.append(VD_JSON_NAME)
        if _at_least(LIBERTY, version, OPENSTACK_VERSIONS):
            out.append(NW_JSON_NAME)
        if _at_least(NEWTON_TWO, version, OPENSTACK_VERSIONS):
            out.append(VD2_JSON_NAME)
        return out

    def openstack_item(self, version: str, name: str) -> tuple[bytes, str]:
        """(body, media type) of /openstack/VERSION/NAME."""
        real = self.os_version(version)
        if name == MD_JSON_NAME:
            return dumps(self.meta_data(version)), JSON
        if name == UD_NAME and self.userdata_raw is not None:
            return self.userdata_raw, TEXT
        if name == PASS_NAME and _at_least(GRIZZLY, real, OPENSTACK_VERSIONS):
            return b"", TEXT                   # no password posted by the guest
        if name == VD_JSON_NAME and _at_least(HAVANA, real, OPENSTACK_VERSIONS):
            return dumps(self.vendor_data), JSON
        if name == NW_JSON_NAME:               # Nova serves it as text/plain
            return dumps(self.network if self.network is not None else {}), TEXT
        if name == VD2_JSON_NAME and _at_least(NEWTON_TWO, real, OPENSTACK_VERSIONS):
            return dumps({"static": self.vendor_data}), JSON
        raise NotFound(name)

    # The config drive ----------------------------------------------------------
    def config_drive_files(self) -> dict[str, bytes]:
        """Nova's metadata_for_config_drive: {path on the drive: content}."""
        files: dict[str, bytes] = {}
        for version in CONFIG_DRIVE_EC2_VERSIONS:
            data = self.ec2_metadata(version)
            if "user-data" in data:
                files[f"ec2/{version}/user-data"] = data.pop("user-data")
            keys = data["meta-data"].get("public-keys")
            if keys:
                keys["0"].pop("_name", None)
            files[f"ec2/{version}/meta-data.json"] = dumps(data["meta-data"])
        everything = OPENSTACK_VERSIONS + ["latest"]
        for version in everything:
            names = [MD_JSON_NAME]
            if self.userdata_raw is not None:
                names.append(UD_NAME)
            if _at_least(HAVANA, version, everything):
                names.append(VD_JSON_NAME)
            if _at_least(LIBERTY, version, everything):
                names.append(NW_JSON_NAME)
            if _at_least(NEWTON_TWO, version, everything):
                names.append(VD2_JSON_NAME)
            for name in names:
                files[f"openstack/{version}/{name}"] = self.openstack_item(version, name)[0]
        return files


def _read_vendordata(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        log.warning("cannot read the vendor data file; serving {}", extra={"fields": {
            "path": path, "error": str(e)}})
        return {}
    if not isinstance(data, dict):
        log.warning("the vendor data file is not a JSON object; serving {}",
                    extra={"fields": {"path": path}})
        return {}
    return data


async def _metadata(cloud, facts: Facts, **kw) -> InstanceMetadata:
    cfg = cloud.config.metadata
    vendor = {}
    if cfg.vendordata_jsonfile_path:
        vendor = await asyncio.to_thread(_read_vendordata, cfg.vendordata_jsonfile_path)
    return InstanceMetadata(facts, dhcp_domain=cfg.dhcp_domain, vendor_data=vendor, **kw)


async def instance_metadata(cloud, conn, instance_uuid: str, *,
                            address: str | None = None) -> InstanceMetadata | None:
    facts = await load(cloud, conn, instance_uuid)
    return await _metadata(cloud, facts, address=address) if facts is not None else None


async def instance_documents(cloud, conn, instance_uuid: str, *,
                             admin_pass: str | None = None) -> dict[str, bytes]:
    """The config drive's files of one instance ({} when it does not exist).

    ``admin_pass`` goes into meta_data.json as Nova's config drive puts it.
    """
    facts = await load(cloud, conn, instance_uuid)
    if facts is None:
        return {}
    extra = {"admin_pass": admin_pass} if admin_pass else None
    return (await _metadata(cloud, facts, extra_md=extra)).config_drive_files()


def config_drive_spec(files: dict[str, bytes]) -> dict:
    """The spawn spec's ``config_drive`` value: {"files": {path: base64}}."""
    return {"files": {path: base64.b64encode(data).decode() for path, data in files.items()}}


def files_from_spec(config_drive: dict) -> dict[str, bytes]:
    """The inverse of config_drive_spec (on the agent)."""
    return {path: base64.b64decode(data)
            for path, data in (config_drive.get("files") or {}).items()}
