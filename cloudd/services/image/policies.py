"""Glance's policy rules and their secure-RBAC defaults (glance/policies/*.py).

Rule names are Glance's own, so an operator's Glance policy.yaml carries over.
The base rules Glance shares with other services (context_is_admin) keep the
same meaning; the rest are written out in full rather than shared, so another
API's ``service_api`` can never change an image rule.
"""

from __future__ import annotations

ADMIN = "rule:context_is_admin"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
IMAGE_MEMBER = "project_id:%(member_id)s"
_VISIBLE = (f"project_id:%(project_id)s or {IMAGE_MEMBER} or 'community':%(visibility)s "
            "or 'public':%(visibility)s or 'shared':%(visibility)s")

ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
GET_IMAGE = f"{ADMIN} or (role:reader and ({_VISIBLE}))"
DOWNLOAD_IMAGE = f"{ADMIN} or (role:member and ({_VISIBLE}))"
CREATE_IMAGE = f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_SHARED_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER})"
ADMIN_OR_READER_OR_SHARED_MEMBER = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER}))")

POLICIES: dict[str, str] = {
    "context_is_admin": "role:admin",
    "add_image": CREATE_IMAGE,
    "delete_image": ADMIN_OR_PROJECT_MEMBER,
    "get_image": GET_IMAGE,
    "get_images": ADMIN_OR_PROJECT_READER,
    "modify_image": ADMIN_OR_PROJECT_MEMBER,
    "publicize_image": ADMIN,
    "communitize_image": ADMIN_OR_PROJECT_MEMBER,
    "download_image": DOWNLOAD_IMAGE,
    "upload_image": ADMIN_OR_PROJECT_MEMBER,
    "add_member": ADMIN_OR_PROJECT_MEMBER,
    "delete_member": ADMIN_OR_PROJECT_MEMBER,
    "get_member": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "get_members": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "modify_member": ADMIN_OR_SHARED_MEMBER,
    "deactivate": ADMIN_OR_PROJECT_MEMBER,
    "reactivate": ADMIN_OR_PROJECT_MEMBER,
}

SCOPE_TYPES: dict[str, list[str]] = {name: ["project"] for name in POLICIES
                                     if name != "context_is_admin"}
