"""Configuration: pydantic models loaded from TOML, overridden by the environment.

Precedence, lowest first: model defaults, the TOML file, ``CLOUDD_SECTION__KEY``
environment variables, then command-line flags.  ``config.toml`` at the top of
the repository documents every option with its default; a test keeps the two in
step.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "CLOUDD_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerConfig(Section):
    listen: str = "127.0.0.1:8800"
    public_url: str = ""
    data_dir: str = ""
    region: str = "RegionOne"
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    shutdown_timeout: float = Field(default=30.0, ge=0)
    access_log: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["kv", "json"] = "kv"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _hostport(value)


class ListenersConfig(Section):
    identity: str = ""
    compute: str = ""
    placement: str = ""
    image: str = ""
    volume: str = ""
    network: str = ""

    @field_validator("*")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _hostport(value) if value else value


class DatabaseConfig(Section):
    url: str = ""
    echo: bool = False
    pool_size: int = Field(default=32, ge=1)


class IdentityConfig(Section):
    token_expiration: int = Field(default=3600, gt=0)
    fernet_max_active_keys: int = Field(default=3, ge=3)
    lockout_failure_attempts: int = Field(default=0, ge=0)
    lockout_duration: int = Field(default=1800, ge=0)
    password_hash_rounds: int = Field(default=12, ge=4, le=31)
    admin_user: str = "admin"
    admin_project: str = "admin"
    token_cache_seconds: float = Field(default=5.0, ge=0)


class AuthConfig(Section):
    # keystone: X-Auth-Token is a Fernet token from /identity. noauth2 (tests
    # only, never in production): the token names the caller as Placement's and
    # Nova's functional tests do ("admin", "user", "USER:PROJECT").
    strategy: Literal["keystone", "noauth2"] = "keystone"


class PolicyConfig(Section):
    enforce_new_defaults: bool = True
    enforce_scope: bool = False


class RuntimeConfig(Section):
    sync_cast: bool = False
    use_uvloop: bool = True


class ComputeConfig(Section):
    # The agent started inside `cloudd serve` (a sidecar task in the process):
    # libvirt, fake, or none (agents run elsewhere with `cloudd agent`).
    local_agent: Literal["libvirt", "fake", "none"] = "fake"
    # Agents send a heartbeat this often; a host silent for longer than
    # service_down_time shows "down" and is not scheduled to (Nova's
    # report_interval and service_down_time).
    heartbeat_interval: float = Field(default=10.0, gt=0)
    service_down_time: float = Field(default=60.0, gt=0)
    # Hosts tried for one build before it fails with "No valid host was found"
    # (Nova's [scheduler] max_attempts).
    max_attempts: int = Field(default=3, ge=1)
    # An agent command not answered within this many seconds is resent.
    command_timeout: float = Field(default=600.0, gt=0)
    default_availability_zone: str = "nova"
    # Weigher multipliers (Nova's [filter_scheduler] *_weight_multiplier).
    ram_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    build_failure_weight_multiplier: float = 1000000.0
    # Give every guest a config drive, asked for or not (Nova's force_config_drive).
    force_config_drive: bool = False


class QuotaConfig(Section):
    # Nova's [quota] defaults; -1 is unlimited.
    instances: int = Field(default=10, ge=-1)
    cores: int = Field(default=20, ge=-1)
    ram: int = Field(default=51200, ge=-1)
    metadata_items: int = Field(default=128, ge=-1)
    key_pairs: int = Field(default=100, ge=-1)
    server_groups: int = Field(default=10, ge=-1)
    server_group_members: int = Field(default=10, ge=-1)
    injected_files: int = Field(default=5, ge=-1)
    injected_file_content_bytes: int = Field(default=10240, ge=-1)
    injected_file_path_bytes: int = Field(default=255, ge=-1)


class AgentConfig(Section):
    # `cloudd agent`: where the controller is and who this host is. The
    # credential comes from `cloudd host add NAME` and is read from
    # credential_file (mode 0600) or the CLOUDD_AGENT_CREDENTIAL variable,
    # never from this file.
    controller: str = ""
    host: str = ""
    driver: Literal["libvirt", "fake"] = "fake"
    credential_file: str = ""
    state_dir: str = ""
    # What the host offers placement (Nova's allocation ratios and reserved amounts).
    cpu_allocation_ratio: float = Field(default=4.0, gt=0)
    ram_allocation_ratio: float = Field(default=1.0, gt=0)
    disk_allocation_ratio: float = Field(default=1.0, gt=0)
    reserved_host_cpus: int = Field(default=0, ge=0)
    reserved_host_memory_mb: int = Field(default=512, ge=0)
    reserved_host_disk_mb: int = Field(default=0, ge=0)


class FakeDriverConfig(Section):
    # The fake driver's host (per agent) and its failure knobs.
    vcpus: int = Field(default=16, ge=1)
    memory_mb: int = Field(default=32768, ge=1)
    disk_gb: int = Field(default=1000, ge=1)
    # Every spawn fails; retryable failures send the build to another host.
    fail_spawn: bool = False
    retryable_failure: bool = False
    # Seconds each operation takes.
    delay: float = Field(default=0.0, ge=0)


class ImageConfig(Section):
    # The file store: where image data lives (empty means DATA_DIR/images).
    store_dir: str = ""
    # The largest image accepted, in bytes (Glance's image_size_cap; 1 TiB).
    max_image_size: int = Field(default=1_099_511_627_776, gt=0)
    # Interoperable import methods offered (comma separated): glance-direct.
    import_methods: str = "glance-direct"
    # Format inspection: qemu-img runs with these limits (seconds of CPU and
    # wall clock, MiB of address space).
    inspect_timeout: float = Field(default=30.0, gt=0)
    inspect_memory_mb: int = Field(default=1024, ge=64)


EphemeralFs = Literal["ext4", "ext3", "xfs", "vfat", "ntfs"]
EPHEMERAL_FS = ("ext4", "ext3", "xfs", "vfat", "ntfs")


class LibvirtConfig(Section):
    # The libvirt driver of an agent (or of the local agent of `cloudd serve`).
    uri: str = "qemu:///system"
    # auto: KVM when it really boots a kernel here, else QEMU's software
    # emulation; kvm or qemu force one.
    virt_type: Literal["auto", "kvm", "qemu"] = "auto"
    # Guests' disks and console logs, and the cache of base images (default:
    # directories in the agent's state directory).
    instances_dir: str = ""
    image_cache_dir: str = ""
    # Seconds a guest gets to shut down on ACPI power-off before a hard stop.
    shutdown_timeout: float = Field(default=60.0, ge=0)
    # A kernel the virt_type probe boots under KVM (default: the host's own
    # /boot/vmlinuz-*, if any).
    probe_kernel: str = ""
    # Guests' VNC servers listen on this address (a port chosen by libvirt) and
    # their serial consoles on a TCP port of serial_port_range ("LOW:HIGH") on
    # it; the controller's console proxy connects there.
    vnc_listen: str = "127.0.0.1"
    serial_port_range: str = Field(default="10000:20000", pattern=r"^\d{1,5}:\d{1,5}$")
    # The filesystem of a flavor's ephemeral disk per image os_type property,
    # as "os_type=fs" (Nova's virt_mkfs), and for any other os_type (Nova's
    # default_ephemeral_format). Filesystems: ext4, ext3, xfs, vfat, ntfs.
    ephemeral_formats: list[str] = ["linux=ext4", "windows=ntfs"]
    default_ephemeral_format: EphemeralFs = "ext4"

    @field_validator("ephemeral_formats", mode="before")
    @classmethod
    def _comma_list(cls, value):
        """CLOUDD_LIBVIRT__EPHEMERAL_FORMATS="linux=ext4,windows=ntfs" works too."""
        return [p.strip() for p in value.split(",") if p.strip()] \
            if isinstance(value, str) else value

    @field_validator("ephemeral_formats")
    @classmethod
    def _os_type_equals_fs(cls, value: list[str]) -> list[str]:
        for item in value:
            os_type, sep, fs = item.partition("=")
            if not sep or not os_type.strip() or fs.strip() not in EPHEMERAL_FS:
                raise ValueError(f"{item!r} is not os_type=fs with fs one of "
                                 f"{', '.join(EPHEMERAL_FS)}")
        return value

    def ephemeral_format_map(self) -> dict[str, str]:
        return {k.strip().lower(): v.strip() for k, _, v in
                (item.partition("=") for item in self.ephemeral_formats)}


class MetadataConfig(Section):
    # What guests read from their config drive and the metadata service.
    # Guests' host names are NAME.DHCP_DOMAIN (Nova's [api] dhcp_domain); "" for NAME.
    dhcp_domain: str = "novalocal"
    # A JSON file served as vendor_data.json (and as "static" in
    # vendor_data2.json), Nova's [api] vendordata_jsonfile_path; "" serves {}.
    vendordata_jsonfile_path: str = ""


class ConsoleConfig(Section):
    # Remote consoles: noVNC and the serial console over websockets on the main
    # port, each URL behind a one-time token (Nova's [vnc] / [serial_console]).
    vnc_enabled: bool = True
    serial_enabled: bool = True
    # Seconds a console token stays valid (Nova's [consoleauth] token_ttl).
    token_ttl: int = Field(default=600, gt=0)
    # The noVNC files served at /console/novnc/ (Debian's novnc package).
    novnc_dir: str = "/usr/share/novnc"
    # Origins (host or host:port) allowed to open console websockets besides
    # the public URL's and the request's own host, comma separated.
    allowed_origins: str = ""


class NetworkConfig(Section):
    # The Network API (Neutron v2.0 subset). Bootstrap makes the shared network
    # "default" (network type local: an isolated bridge per host, NAT to the
    # host's uplink) with one IPv4 subnet of default_cidr; "" makes none.
    default_cidr: str = "10.253.0.0/24"
    default_network_name: str = "default"
    # The MTU of new networks (Neutron's global_physnet_mtu).
    global_physnet_mtu: int = Field(default=1500, ge=68)
    # Physical networks flat and vlan provider networks may name, comma
    # separated; "*" allows any (Neutron's [ml2_type_flat] flat_networks).
    physical_networks: str = "*"
    # Neutron's [quotas] defaults per project; -1 is unlimited.
    quota_network: int = Field(default=100, ge=-1)
    quota_subnet: int = Field(default=100, ge=-1)
    quota_port: int = Field(default=500, ge=-1)
    quota_security_group: int = Field(default=10, ge=-1)
    quota_security_group_rule: int = Field(default=100, ge=-1)


class HostNetworkConfig(Section):
    # The libvirt agent's host plumbing: a cdbr-* bridge per network, dnsmasq,
    # nftables. Flat and vlan networks attach to the interface mapped to their
    # physical network, as "physnet:interface" (Neutron's linuxbridge
    # physical_interface_mappings); vlan ones through "interface.VID".
    physical_interface_mappings: list[str] = []
    # The port the metadata proxy listens on, on each network's host address
    # (guests reach it as 169.254.169.254:80 through a DNAT).
    metadata_port: int = Field(default=8775, ge=1, le=65535)
    # The dnsmasq binary (Debian's dnsmasq-base).
    dnsmasq: str = "dnsmasq"
    # Where the plumbing keeps its state and dnsmasq's files (default: the
    # agent's state directory's "network").
    state_dir: str = ""
    # The nftables tables it owns: "bridge NAME" (security groups) and
    # "ip NAME_nat" (NAT, metadata DNAT); one agent per host owns them.
    nft_table: str = Field(default="cloudd", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,40}$")

    @field_validator("physical_interface_mappings", mode="before")
    @classmethod
    def _comma_list(cls, value):
        return [p.strip() for p in value.split(",") if p.strip()] \
            if isinstance(value, str) else value

    @field_validator("physical_interface_mappings")
    @classmethod
    def _physnet_colon_iface(cls, value: list[str]) -> list[str]:
        for item in value:
            net, sep, iface = item.partition(":")
            if not sep or not net.strip() or not iface.strip():
                raise ValueError(f"{item!r} is not physnet:interface")
        return value


class Config(Section):
    server: ServerConfig = ServerConfig()
    listeners: ListenersConfig = ListenersConfig()
    database: DatabaseConfig = DatabaseConfig()
    identity: IdentityConfig = IdentityConfig()
    auth: AuthConfig = AuthConfig()
    policy: PolicyConfig = PolicyConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    compute: ComputeConfig = ComputeConfig()
    quota: QuotaConfig = QuotaConfig()
    agent: AgentConfig = AgentConfig()
    fake_driver: FakeDriverConfig = FakeDriverConfig()
    libvirt: LibvirtConfig = LibvirtConfig()
    console: ConsoleConfig = ConsoleConfig()
    image: ImageConfig = ImageConfig()
    metadata: MetadataConfig = MetadataConfig()
    network: NetworkConfig = NetworkConfig()
    host_network: HostNetworkConfig = HostNetworkConfig()

    @property
    def data_dir(self) -> Path:
        if self.server.data_dir:
            return Path(self.server.data_dir).expanduser()
        return default_data_dir()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'cloudd.db'}"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host, port = split_hostport(self.server.listen)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"


class ConfigError(Exception):
    """A configuration problem, worded for the person who runs cloudd."""


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/cloudd")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cloudd"


def split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _hostport(value: str) -> str:
    split_hostport(value)
    return value


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return f"invalid configuration in {source}:\n" + "\n".join(lines)


def load(path: str | Path | None = None, environ: dict[str, str] | None = None,
         overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Load the configuration; raise ConfigError naming the bad key and source."""
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None
    layers = [("environment (CLOUDD_SECTION__KEY)", _env_overrides(environ)),
              ("command line", overrides or {})]
    for layer_source, layer in layers:
        if not layer:
            continue
        merged = cfg.model_dump()
        for section, values in layer.items():
            if not isinstance(merged.get(section), dict):
                raise ConfigError(f"invalid configuration in {layer_source}:\n"
                                  f"  {section}: unknown section")
            merged[section].update(values)
        try:
            cfg = Config.model_validate(merged)
        except ValidationError as e:
            raise ConfigError(_describe(e, layer_source)) from None
    return cfg
