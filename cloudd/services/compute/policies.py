"""Nova's base policy rules (nova/policies/base.py). Each resource module
adds its own rules in a ``POLICIES`` dict; api.py merges them."""

BASE: dict[str, str] = {
    "context_is_admin": "role:admin",
    "admin_api": "role:admin",
    "service_api": "role:service",
    "service_or_admin": "rule:service_api or rule:context_is_admin",
    "project_manager_api": "role:manager and project_id:%(project_id)s",
    "project_member_api": "role:member and project_id:%(project_id)s",
    "project_reader_api": "role:reader and project_id:%(project_id)s",
    "project_manager_or_admin": "rule:project_manager_api or rule:context_is_admin",
    "project_member_or_admin": "rule:project_member_api or rule:context_is_admin",
    "project_reader_or_admin": "rule:project_reader_api or rule:context_is_admin",
}

ADMIN = "rule:admin_api"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
ANY = "@"
