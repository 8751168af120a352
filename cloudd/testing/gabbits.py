"""Placement's own gabbi files, fetched from PyPI for cloudd's compatibility run.

The YAML files come from the ``openstack-placement`` wheel, downloaded with
``pip download --no-deps`` (never installed: its dependency pins may clash with
ours) and unpacked once into a cache directory. Later calls reuse the cache.

    from cloudd.testing.gabbits import gabbits_dir
    path = gabbits_dir()          # .../placement-16.0.0/gabbits/*.yaml
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PLACEMENT_VERSION = "16.0.0"
_MEMBER_PREFIX = "placement/tests/functional/gabbits/"


def cache_root() -> Path:
    """``$CLOUDD_GABBITS_CACHE``, else ``~/.cache/cloudd`` (XDG_CACHE_HOME honoured)."""
    explicit = os.environ.get("CLOUDD_GABBITS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudd"


def gabbits_dir(version: str = PLACEMENT_VERSION) -> Path:
    """The directory holding Placement ``version``'s gabbi YAML files.

    Downloads and unpacks them on first use; idempotent and safe to call from
    concurrent test runs (the directory appears atomically, by rename).
    """
    target = cache_root() / f"placement-{version}" / "gabbits"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".dl-") as tmp:
        wheel = _download(version, Path(tmp))
        staging = Path(tmp) / "gabbits"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist()
                       if m.startswith(_MEMBER_PREFIX) and m.endswith(".yaml")
                       and "/" not in m[len(_MEMBER_PREFIX):]]
            if not members:
                raise RuntimeError(f"{wheel.name} holds no gabbi files under "
                                   f"{_MEMBER_PREFIX}")
            for member in members:
                (staging / Path(member).name).write_bytes(zf.read(member))
        (staging / ".complete").write_text(f"{wheel.name}\n")
        try:
            staging.rename(target)
        except OSError:  # another run got there first
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    return target


def _download(version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", f"openstack-placement=={version}",
           "-d", str(dest)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wheels = sorted(dest.glob("openstack_placement-*.whl"))
    if res.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download openstack-placement=={version} "
                           f"({' '.join(cmd)}):\n{res.stdout}\n{res.stderr}")
    return wheels[0]


if __name__ == "__main__":
    print(gabbits_dir())
