"""Answering a metadata service path, as Nova's handler and ``lookup`` do.

``lookup(md, path)`` -> (body, media type) or NotFound. Paths are
normalised (``/openstack/`` is ``/openstack``); anything not under
``/openstack`` is the EC2 tree (``/latest/meta-data/...`` is
``/ec2/latest/meta-data/...``). Directories are listed one entry a line,
sub-directories with a trailing ``/`` (``ec2_md_print``); the EC2 public
keys list as ``0=KEYNAME`` as in EC2.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime

from cloudd.services.metadata.documents import (
    OPENSTACK_VERSIONS,
    TEXT,
    VERSIONS,
    InstanceMetadata,
    NotFound,
)

ROOT_LISTING = "\n".join(VERSIONS + ["latest"]).encode()


def md_print(data) -> bytes:
    """Nova's ec2_md_print."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            if key == "_name":
                continue
            value = data[key]
            if isinstance(value, dict):
                lines.append(str(value["_name"]) if "_name" in value else key + "/")
            else:
                lines.append(key)
        return "\n".join(lines).encode()
    if isinstance(data, list):
        return "\n".join(str(x) for x in data).encode()
    if isinstance(data, bytes):
        return data
    if data is None:
        return b"None"
    return str(data).encode()


def normalise(path: str) -> list[str]:
    """The path's tokens, with Nova's /ec2 prefix for anything not /openstack."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    tokens = path.split("/")[1:]
    if tokens[0] not in ("ec2", "openstack"):
        tokens = ["ec2"] if tokens[0] == "" else ["ec2"] + tokens
    return tokens


def _find(data, tokens: list[str]):
    for i, token in enumerate(tokens):
        if isinstance(data, dict) and token in data:
            data = data[token]
        else:
            raise NotFound("/".join(tokens[:i + 1]))
    return data


def openstack_versions(today: str | None = None) -> list[str]:
    """The OpenStack versions listed at /openstack (future ones hidden)."""
    today = today or datetime.now(UTC).strftime("%Y-%m-%d")
    return [v for v in OPENSTACK_VERSIONS if v <= today] + ["latest"]


def lookup(md: InstanceMetadata, path: str) -> tuple[bytes, str]:
    """The body and media type of one metadata path, or NotFound."""
    tokens = normalise(path)
    if len(tokens) == 1:
        if tokens[0] == "openstack":
            return md_print(openstack_versions()), TEXT
        return ROOT_LISTING, TEXT
    if tokens[0] == "openstack":
        version = tokens[1]
        if len(tokens) == 2:
            return md_print(md.version_listing(version)), TEXT
        if tokens[1] == "content":
            raise NotFound(path)               # no injected files in cloudd
        return md.openstack_item(version, "/".join(tokens[2:]))
    data = md.ec2_metadata(tokens[1])
    return md_print(_find(data, tokens[2:])), TEXT
