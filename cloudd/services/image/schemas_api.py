"""The JSON schemas Glance serves (/v2/schemas/*) and validates image bodies with.

As glance/api/v2/images.py get_base_properties(), the properties DevStack's
etc/schema-image.json adds (kernel_id, ramdisk_id, os_distro...), and
image_members.py's member schema. Image schemas are "permissive": any other
property is allowed when it is a string.
"""

from __future__ import annotations

import copy
import functools

from aiohttp import web

CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop"]
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated"]
_UUID = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
         "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")


def _s(kind, description, **kw) -> dict:
    return {"type": kind, "description": description, **kw}


BASE_PROPERTIES: dict = {
    "id": _s("string", "An identifier for the image", pattern=_UUID),
    "name": _s(["null", "string"], "Descriptive name for the image", maxLength=255),
    "status": {"type": "string", "readOnly": True, "description": "Status of the image",
               "enum": STATUSES},
    "visibility": _s("string", "Scope of image accessibility",
                     enum=["community", "public", "private", "shared"]),
    "protected": _s("boolean", "If true, image will not be deletable."),
    "os_hidden": _s("boolean", "If true, image will not appear in default image list "
                               "response."),
    "checksum": {"type": ["null", "string"], "readOnly": True,
                 "description": "md5 hash of image contents.", "maxLength": 32},
    "os_hash_algo": {"type": ["null", "string"], "readOnly": True,
                     "description": "Algorithm to calculate the os_hash_value",
                     "maxLength": 64},
    "os_hash_value": {"type": ["null", "string"], "readOnly": True,
                      "description": "Hexdigest of the image contents using the algorithm "
                                     "specified by the os_hash_algo", "maxLength": 128},
    "owner": _s(["null", "string"], "Owner of the image", maxLength=255),
    "size": {"type": ["null", "integer"], "readOnly": True,
             "description": "Size of image file in bytes"},
    "virtual_size": {"type": ["null", "integer"], "readOnly": True,
                     "description": "Virtual size of image in bytes"},
    "container_format": _s(["null", "string"], "Format of the container",
                           enum=[None, *CONTAINER_FORMATS]),
    "disk_format": _s(["null", "string"], "Format of the disk", enum=[None, *DISK_FORMATS]),
    "created_at": {"type": "string", "readOnly": True,
                   "description": "Date and time of image registration"},
    "updated_at": {"type": "string", "readOnly": True,
                   "description": "Date and time of the last image modification"},
    "tags": _s("array", "List of strings related to the image",
               items={"type": "string", "maxLength": 255}),
    "direct_url": {"type": "string", "readOnly": True,
                   "description": "URL to access the image file kept in external store"},
    "min_ram": _s("integer", "Amount of ram (in MB) required to boot image."),
    "min_disk": _s("integer", "Amount of disk space (in GB) required to boot image."),
    "self": {"type": "string", "readOnly": True, "description": "An image self url"},
    "file": {"type": "string", "readOnly": True, "description": "An image file url"},
    "stores": {"type": "string", "readOnly": True,
               "description": "Store in which image data resides.  Only present when the "
                              "operator has enabled multiple stores.  May be a "
                              "comma-separated list of store identifiers."},
    "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    "locations": {
        "type": "array",
        "items": {"type": "object",
                  "properties": {"url": {"type": "string", "maxLength": 255},
                                 "metadata": {"type": "object"}},
                  "required": ["url", "metadata"]},
        "description": "A set of URLs to access the image file kept in external store"},
}

_NULL_UUID = {"type": ["null", "string"], "pattern": _UUID}
CUSTOM_PROPERTIES: dict = {
    "kernel_id": {**_NULL_UUID, "description": "ID of image stored in Glance that should be "
                  "used as the kernel when booting an AMI-style image.", "is_base": False},
    "ramdisk_id": {**_NULL_UUID, "description": "ID of image stored in Glance that should "
                   "be used as the ramdisk when booting an AMI-style image.",
                   "is_base": False},
    "instance_uuid": {"type": "string", "description": "Metadata which can be used to "
                      "record which instance this image is associated with. (Informational "
                      "only, does not create an instance snapshot.)", "is_base": False},
    "architecture": {"description": "Operating system architecture as specified in "
                     "https://docs.openstack.org/python-glanceclient/latest/cli/"
                     "property-keys.html", "type": "string", "is_base": False},
    "os_distro": {"description": "Common name of operating system distribution as "
                  "specified in https://docs.openstack.org/python-glanceclient/latest/cli/"
                  "property-keys.html", "type": "string", "is_base": False},
    "os_version": {"description": "Operating system version as specified by the "
                   "distributor.", "type": "string", "is_base": False},
    "description": {"description": "A human-readable string describing this image.",
                    "type": "string", "is_base": False},
}

LINKS = [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
         {"rel": "describedby", "href": "{schema}"}]


def image_schema() -> dict:
    props = copy.deepcopy(BASE_PROPERTIES)
    props.update(copy.deepcopy(CUSTOM_PROPERTIES))
    return {"name": "image", "properties": props,
            "additionalProperties": {"type": "string"}, "links": LINKS}


def images_schema() -> dict:
    return {"name": "images",
            "properties": {"images": {"type": "array", "items": image_schema()},
                           "first": {"type": "string"}, "next": {"type": "string"},
                           "schema": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


MEMBER_PROPERTIES = {
    "member_id": {"type": "string",
                  "description": "An identifier for the image member (tenantId)"},
    "image_id": {"type": "string", "description": "An identifier for the image",
                 "pattern": _UUID},
    "created_at": {"type": "string",
                   "description": "Date and time of image member creation"},
    "updated_at": {"type": "string",
                   "description": "Date and time of last modification of image member"},
    "status": {"type": "string", "description": "The status of this image member",
               "enum": ["pending", "accepted", "rejected"]},
    "schema": {"readOnly": True, "type": "string"},
}


def member_schema() -> dict:
    return {"name": "member", "properties": copy.deepcopy(MEMBER_PROPERTIES)}


def members_schema() -> dict:
    return {"name": "members",
            "properties": {"members": {"type": "array", "items": member_schema()},
                           "schema": {"type": "string"}},
            "links": [{"rel": "describedby", "href": "{schema}"}]}


@functools.cache
def _validator():
    # jsonschema loads on the first image written, not at start (~2 MB idle)
    import jsonschema

    return jsonschema.Draft4Validator(image_schema())


def validation_error(obj: dict) -> str | None:
    """Glance's message when ``obj`` does not match the image schema, else None."""
    from jsonschema.exceptions import best_match

    err = best_match(_validator().iter_errors(obj))
    if err is None:
        return None
    return f"Provided object does not match schema 'image': {err.message}"


def _json(body: dict) -> web.Response:
    return web.json_response(body)


async def get_image_schema(request: web.Request) -> web.Response:
    return _json(image_schema())


async def get_images_schema(request: web.Request) -> web.Response:
    return _json(images_schema())


async def get_member_schema(request: web.Request) -> web.Response:
    return _json(member_schema())


async def get_members_schema(request: web.Request) -> web.Response:
    return _json(members_schema())
