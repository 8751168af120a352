"""Run Tempest (from its own venv) against a running cloudd and summarise it.

The venv is made by `make test` (``.tempest-venv``, tempest from PyPI).
``write_conf`` writes a tempest.conf for a cloud whose compute hosts run
the fake driver, with its network service (servers boot on the shared
``default`` network); ``run`` runs a regex of tests and returns the counts, the
reason for each skip and the detail of each failure.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cloudd.services.compute import microversion

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".tempest-venv"
PYTHON = VENV / "bin" / "python"
TEMPEST = VENV / "bin" / "tempest"

# Features the fake-driver cloud has, and the ones it does not have (yet):
# Tempest skips the tests of a disabled feature or an unavailable service.
COMPUTE_FEATURES = {
    "resize": True, "console_output": True, "pause": True, "suspend": True,
    "disk_config": True, "enable_instance_password": True,
    "shelve": False, "shelve_migrate": False, "cold_migration": False,
    "live_migration": False, "rescue": False, "change_password": False,
    "interface_attach": True, "snapshot": True, "metadata_service": True,
    "config_drive": True, "attach_encrypted_volume": False, "personality": False,
    "vnc_console": False, "serial_console": False, "spice_console": False,
    "ide_bus": False, "swap_volume": False, "volume_multiattach": False,
}
SERVICES = {"nova": True, "glance": True, "neutron": True, "cinder": False,
            "swift": False, "placement": True}
# The shared network bootstrap creates: servers Tempest boots go on it
# ([auth] create_isolated_networks is off: cloudd has no routers).
FIXED_NETWORK = "default"


def write_conf(workspace: Path, *, url: str, admin: dict, image_ref: str,
               image_ref_alt: str, min_compute_nodes: int,
               network_extensions: list[str] | None = None) -> Path:
    """``network_extensions``: the aliases the network API lists (Tempest
    skips the tests of the others); None leaves Tempest's default (all)."""
    conf = configparser.ConfigParser(interpolation=None)
    conf["DEFAULT"] = {"log_file": str(workspace / "tempest.log"), "debug": "false"}
    conf["auth"] = {
        "admin_username": admin["username"], "admin_password": admin["password"],
        "admin_project_name": admin["project_name"],
        "admin_domain_name": admin.get("user_domain_name", "Default"),
        "use_dynamic_credentials": "true", "create_isolated_networks": "false"}
    conf["identity"] = {"uri_v3": f"{url}/identity/v3", "auth_version": "v3",
                        "region": "RegionOne", "v3_endpoint_type": "public"}
    conf["identity-feature-enabled"] = {"api_v2": "false"}
    conf["compute"] = {
        "image_ref": image_ref, "image_ref_alt": image_ref_alt, "flavor_ref": "1",
        "flavor_ref_alt": "2", "min_compute_nodes": str(min_compute_nodes),
        "build_interval": "1", "build_timeout": "60", "region": "RegionOne",
        "endpoint_type": "publicURL", "min_microversion": "2.1",
        "max_microversion": microversion.fmt(microversion.MAX),
        "fixed_network_name": FIXED_NETWORK}
    conf["compute-feature-enabled"] = {k: str(v).lower() for k, v in COMPUTE_FEATURES.items()}
    conf["compute-feature-enabled"]["scheduler_enabled_filters"] = (
        "AvailabilityZoneFilter,ComputeFilter,ImagePropertiesFilter,"
        "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,SameHostFilter,"
        "DifferentHostFilter,AggregateInstanceExtraSpecsFilter")
    conf["service_available"] = {k: str(v).lower() for k, v in SERVICES.items()}
    conf["network"] = {"region": "RegionOne", "endpoint_type": "publicURL",
                       "project_networks_reachable": "false"}
    if network_extensions is not None:
        conf["network-feature-enabled"] = {"api_extensions": ",".join(network_extensions)}
    conf["validation"] = {"run_validation": "false"}
    conf["oslo_concurrency"] = {"lock_path": str(workspace / "locks")}
    path = workspace / "etc" / "tempest.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        conf.write(f)
    return path


@dataclass
class Results:
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)     # test -> reason
    failed: dict[str, str] = field(default_factory=dict)      # test -> detail

    def summary(self) -> str:
        return (f"tempest: {len(self.passed)} passed, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed")


# Read in Tempest's venv: subunit and testtools live there, not in cloudd's.
_SUMMARISE = r"""
import json, sys
import subunit, testtools
out = {}
class Collect(testtools.StreamResult):
    def status(self, test_id=None, test_status=None, file_name=None, file_bytes=None,
               **kw):
        if not test_id:
            return
        rec = out.setdefault(test_id, {"status": None, "detail": ""})
        if file_bytes and file_name in ("reason", "traceback"):
            rec["detail"] += bytes(file_bytes).decode("utf-8", "replace")
        if test_status in ("success", "fail", "skip", "xfail", "uxsuccess"):
            rec["status"] = test_status
stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
result = Collect()
result.startTestRun(); stream.run(result); result.stopTestRun()
json.dump(out, sys.stdout)
"""


def init_workspace(workspace: Path) -> None:
    """``tempest init`` a workspace, registered in a workspace file beside it
    (not ~/.tempest/workspace.yaml, where a second workspace of the same
    name would make ``tempest init`` fail)."""
    if not (workspace / ".stestr.conf").exists():
        subprocess.run([str(TEMPEST), "init", "--workspace-path",
                        str(workspace.parent / "tempest-workspaces.yaml"),
                        "--name", workspace.name, str(workspace)], check=True,
                       capture_output=True, timeout=120)


def run(workspace: Path, regex: str, *, concurrency: int = 2, timeout: float = 1800,
        exclude: str | None = None) -> Results:
    cmd = [str(TEMPEST), "run", "--regex", regex, "--concurrency", str(concurrency),
           "--subunit"]
    if exclude:
        cmd += ["--exclude-regex", exclude]
    stream = subprocess.run(cmd, cwd=workspace, capture_output=True, timeout=timeout,
                            check=False)
    (workspace / "last.subunit").write_bytes(stream.stdout)
    (workspace / "last.stderr").write_bytes(stream.stderr)
    parsed = subprocess.run([str(PYTHON), "-c", _SUMMARISE], input=stream.stdout,
                            capture_output=True, timeout=300, check=True)
    results = Results()
    for test_id, rec in sorted(json.loads(parsed.stdout).items()):
        name = test_id.split("[")[0]
        if rec["status"] == "success":
            results.passed.append(name)
        elif rec["status"] == "skip":
            results.skipped[name] = rec["detail"].strip()
        elif rec["status"] in ("fail", "uxsuccess"):
            results.failed[name] = rec["detail"].strip()
    return results
