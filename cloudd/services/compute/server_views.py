"""Server bodies per microversion (Nova's views/servers.py).

``Viewer`` holds what one request may see (policies checked once), and
renders rows with the extras ``instance_store.load_extras`` loaded in bulk.
"""

from __future__ import annotations

import hashlib
import json

from cloudd.services.compute import common, instance_store, states

EXT_ATTRS = "os_compute_api:os-extended-server-attributes"
EXTRA_SPECS = "os_compute_api:servers:show:flavor-extra-specs"
HOST_STATUS = "os_compute_api:servers:show:host_status"
HOST_STATUS_UNKNOWN = "os_compute_api:servers:show:host_status:unknown-only"

PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")


def host_id(project_id: str, host: str | None) -> str:
    """Nova's hostId: sha224(project_id + host), "" before a host is chosen."""
    if not host:
        return ""
    return hashlib.sha224((str(project_id) + host).encode()).hexdigest()


def status_of(row) -> str:
    if row.deleted:
        return "DELETED"
    return states.status(row.vm_state, row.task_state)


class Viewer:
    """Renders servers for one request."""

    def __init__(self, request, project_id: str | None = None) -> None:
        self.request = request
        self.ctx = common.context(request)
        self.mv = common.mv(request)
        target = {"project_id": project_id or self.ctx.project_id,
                  "user_id": self.ctx.user_id}
        self.is_admin = self.ctx.can("context_is_admin", {})
        self.extended = self.ctx.can(EXT_ATTRS, target)
        self.extra_specs = self.mv >= (2, 47) and self.ctx.can(EXTRA_SPECS, target)
        self._json: dict[str, dict] = {}        # instance JSON columns parsed once
        self._hrefs: dict[str, tuple[str, str]] = {}
        self.host_status: bool | None = None        # None: hidden; True: UNKNOWN only
        if self.mv >= (2, 16):
            if self.ctx.can(HOST_STATUS, target):
                self.host_status = False
            elif self.ctx.can(HOST_STATUS_UNKNOWN, target):
                self.host_status = True

    def at(self, major: int, minor: int) -> bool:
        return self.mv >= (major, minor)

    # -- pieces ----------------------------------------------------------------

    def links(self, uuid: str, collection: str = "servers") -> list[dict]:
        """common.links, with the two URL prefixes worked out once per request."""
        hrefs = self._hrefs.get(collection)
        if hrefs is None:
            sample = common.links(self.request, collection, "-")
            hrefs = self._hrefs[collection] = (sample[0]["href"][:-1],
                                               sample[1]["href"][:-1])
        return [{"rel": "self", "href": hrefs[0] + uuid},
                {"rel": "bookmark", "href": hrefs[1] + uuid}]

    def _loads(self, raw) -> dict:
        """A JSON column of the instance row (rows of one list share most of them).
        The parsed value is shared: callers must not change it."""
        if not raw:
            return {}
        if not isinstance(raw, str):
            return raw
        value = self._json.get(raw)
        if value is None:
            value = self._json[raw] = json.loads(raw)
        return value

    def basic(self, row) -> dict:
        return {"id": row.uuid, "name": row.display_name, "links": self.links(row.uuid)}

    def flavor(self, row) -> dict:
        flavor = self._loads(row.flavor)
        if not flavor:
            return {}
        if self.at(2, 47):
            out = {"vcpus": flavor.get("vcpus"), "ram": flavor.get("memory_mb"),
                   "disk": flavor.get("root_gb"), "ephemeral": flavor.get("ephemeral_gb"),
                   "swap": flavor.get("swap"), "original_name": flavor.get("name")}
            if self.extra_specs:
                out["extra_specs"] = flavor.get("extra_specs") or {}
            return out
        fid = str(flavor.get("id"))
        return {"id": fid, "links": [
            {"rel": "bookmark", "href": self.links(fid, "flavors")[1]["href"]}]}

    def image(self, row):
        if not row.image_ref:
            return ""
        image_id = row.image_ref.rstrip("/").split("/")[-1]
        out = {"id": image_id, "links": [
            {"rel": "bookmark", "href": self.links(image_id, "images")[1]["href"]}]}
        if self.at(2, 98):
            out["properties"] = {}
        return out

    def addresses(self, row, extras: instance_store.Extras, extend: bool = True) -> dict:
        """Nova's addresses: {network name: [{"version", "addr"} + with
        ``extend`` "OS-EXT-IPS:type" and "OS-EXT-IPS-MAC:mac_addr"]}; none while
        the server is building."""
        if row.vm_state == states.BUILDING:
            return {}
        return addresses_of(extras.vifs.get(row.uuid) or [], extend)

    def fault(self, fault) -> dict:
        out = {"code": fault.code, "created": common.isotime(fault.created_at),
               "message": fault.message}
        if fault.details and (self.is_admin or fault.code != 500):
            out["details"] = fault.details
        return out

    # -- the full body ---------------------------------------------------------

    def show(self, row, extras: instance_store.Extras, *, mode: str = "show") -> dict:
        """One server. ``mode``: show, detail, update or rebuild (PUT and
        rebuild answer with fewer fields before 2.75, as Nova does)."""
        full = mode in ("show", "detail") or self.at(2, 75)
        spec = self._loads(row.request_spec or "{}")
        status = status_of(row)
        server = {
            "accessIPv4": row.access_ip_v4 or "",
            "accessIPv6": row.access_ip_v6 or "",
            "addresses": self.addresses(row, extras, extend=full),
            "created": common.isotime(row.created_at),
            "flavor": self.flavor(row),
            "hostId": host_id(row.project_id, row.host),
            "id": row.uuid,
            "image": self.image(row),
            "links": self.links(row.uuid),
            "metadata": extras.metadata.get(row.uuid, {}),
            "name": row.display_name,
            "status": status,
            "tenant_id": row.project_id or "",
            "user_id": row.user_id or "",
            "updated": common.isotime(row.updated_at or row.created_at),
            "OS-DCF:diskConfig": spec.get("disk_config") or "MANUAL",
        }
        if status in FAULT_STATUSES and row.uuid in extras.faults:
            server["fault"] = self.fault(extras.faults[row.uuid])
        if status in PROGRESS_STATUSES:
            server["progress"] = row.progress or 0
        if full:
            server["OS-EXT-AZ:availability_zone"] = row.availability_zone or ""
            server["config_drive"] = row.config_drive or ""
        if full or (mode == "rebuild" and self.at(2, 54)):
            server["key_name"] = row.key_name
        if full:
            server["OS-SRV-USG:launched_at"] = common.isotime_micro(row.launched_at)
            server["OS-SRV-USG:terminated_at"] = common.isotime_micro(row.terminated_at)
            groups = spec.get("security_groups", ["default"])
            if groups:      # none left after removeSecurityGroup: no key (as Nova)
                server["security_groups"] = [{"name": name} for name in groups]
        show_ext = self.extended if full else False
        if show_ext:
            server["OS-EXT-SRV-ATTR:host"] = row.host
            server["OS-EXT-SRV-ATTR:instance_name"] = instance_store.instance_name(row.uuid)
            server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = row.node
            if self.at(2, 3):
                server["OS-EXT-SRV-ATTR:hostname"] = row.hostname
                server["OS-EXT-SRV-ATTR:kernel_id"] = ""
                server["OS-EXT-SRV-ATTR:launch_index"] = row.launch_index
                server["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
                server["OS-EXT-SRV-ATTR:reservation_id"] = row.reservation_id
                server["OS-EXT-SRV-ATTR:root_device_name"] = (
                    "/dev/vda" if row.launched_at else None)
                if mode != "rebuild":
                    server["OS-EXT-SRV-ATTR:user_data"] = row.user_data
        if full:
            server["OS-EXT-STS:task_state"] = row.task_state
            server["OS-EXT-STS:vm_state"] = row.vm_state
            server["OS-EXT-STS:power_state"] = row.power_state
            server["os-extended-volumes:volumes_attached"] = []
        if self.at(2, 9):
            server["locked"] = bool(row.locked)
        if self.at(2, 16) and full and self.host_status is not None:
            value = extras.host_status.get(row.uuid, "")
            if not self.host_status or value == "UNKNOWN":
                server["host_status"] = value
        if self.at(2, 19):
            server["description"] = row.description
        if self.at(2, 26):
            server["tags"] = extras.tags.get(row.uuid, [])
        if self.at(2, 63):
            server["trusted_image_certificates"] = spec.get("trusted_certs")
        if self.at(2, 71) and mode != "detail":
            server["server_groups"] = extras.groups.get(row.uuid, [])[:1]
        if self.at(2, 73):
            server["locked_reason"] = row.locked_reason
        if self.at(2, 90) and not show_ext:
            server["OS-EXT-SRV-ATTR:hostname"] = row.hostname
        if full and self.at(2, 96):
            server["pinned_availability_zone"] = spec.get("availability_zone")
        if self.at(2, 100):
            server["scheduler_hints"] = hints_view(spec.get("scheduler_hints") or {})
        return server

    def index(self, rows, collection: str = "servers") -> dict:
        return self._paged([self.basic(r) for r in rows], rows, collection)

    def detail(self, rows, extras: instance_store.Extras) -> dict:
        return self._paged([self.show(r, extras, mode="detail") for r in rows], rows,
                           "servers/detail")

    def _paged(self, items: list, rows, collection: str) -> dict:
        out = {"servers": items}
        limit, _ = common.limit_and_marker(self.request)
        if rows and len(rows) == limit:
            out["servers_links"] = [common.next_link(self.request, collection,
                                                     rows[-1].uuid)]
        return out


def addresses_of(vifs: list[dict], extend: bool = True) -> dict:
    """{network name: [address]} from vifs, in their order (Nova's ips view)."""
    out: dict[str, list] = {}
    for vif in vifs:
        ips = out.setdefault(vif.get("network_name") or vif.get("network_id") or "", [])
        for subnet in vif.get("subnets") or []:
            for ip in subnet.get("ips") or []:
                item = {"version": int(subnet.get("ip_version") or (6 if ":" in ip else 4)),
                        "addr": ip}
                if extend:
                    item["OS-EXT-IPS:type"] = "fixed"
                    item["OS-EXT-IPS-MAC:mac_addr"] = vif.get("mac")
                ips.append(item)
    return out


def hints_view(hints: dict) -> dict:
    """Scheduler hints as 2.100 shows them (group as a single uuid)."""
    out = dict(hints)
    group = out.get("group")
    if isinstance(group, list):
        out["group"] = group[0] if group else None
        if out["group"] is None:
            out.pop("group")
    return out


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
