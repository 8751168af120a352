"""Placement policy defaults, rule for rule as Placement names them.

``POLICIES`` are the current (secure-RBAC) defaults; ``DEPRECATED`` the
legacy rules they replaced, still accepted unless
``[policy] enforce_new_defaults`` is true (oslo.policy's behaviour);
``SCOPE_TYPES`` the token scopes each rule accepts, checked when
``[policy] enforce_scope`` is true (a system-scoped token is refused every
Placement API with a 403, as Placement turns oslo.policy's InvalidScope into
PolicyNotAuthorized).
"""

ADMIN_OR_SERVICE = "rule:admin_or_service_api"
SERVICE = "rule:service_api"
ADMIN_OR_PROJECT_READER_OR_SERVICE = "rule:admin_or_project_reader_or_service_api"

_ADMIN_OR_SERVICE_RULES = [
    *(f"placement:resource_providers:{a}" for a in
      ("list", "create", "show", "update", "delete")),
    *(f"placement:resource_providers:inventories:{a}" for a in
      ("list", "create", "show", "update", "delete")),
    "placement:resource_providers:aggregates:list",
    "placement:resource_providers:aggregates:update",
    "placement:resource_providers:usages",
    *(f"placement:resource_providers:traits:{a}" for a in ("list", "update", "delete")),
    *(f"placement:traits:{a}" for a in ("list", "show", "update", "delete")),
    "placement:resource_providers:allocations:list",
    *(f"placement:allocations:{a}" for a in ("list", "manage", "update", "delete")),
    "placement:allocation_candidates:list",
    *(f"placement:resource_classes:{a}" for a in
      ("list", "create", "show", "update", "delete")),
]

POLICIES: dict[str, str] = {
    # The base rules (placement/policies/base.py).
    "admin_api": "role:admin",
    "service_api": "role:service",
    "admin_or_service_api": "role:admin or role:service",
    "project_reader_api": "role:reader and project_id:%(project_id)s",
    "admin_or_project_reader_or_service_api":
        "role:admin or rule:project_reader_api or role:service",
    # The API rules.
    **{name: ADMIN_OR_SERVICE for name in _ADMIN_OR_SERVICE_RULES},
    "placement:reshaper:reshape": SERVICE,
    "placement:usages": ADMIN_OR_PROJECT_READER_OR_SERVICE,
}

# The rules Placement deprecated in Wallaby: everything was admin-only.
DEPRECATED: dict[str, str] = {
    name: "role:admin" for name in ("service_api", "admin_or_service_api",
                                    "project_reader_api",
                                    "admin_or_project_reader_or_service_api")
}

# Every rule is for project-scoped tokens, except project_reader_api (which
# Placement registers without scope_types; it is only referred to by others).
SCOPE_TYPES: dict[str, list[str]] = {
    name: ["project"] for name in POLICIES if name != "project_reader_api"
}
