"""Identity policy defaults, after Keystone's secure-RBAC defaults.

As in Keystone (with oslo.policy's scope enforcement off), ``admin`` on any
scope is cloud admin; readers see, members act on their own project,
owners manage their own user and application credentials.
"""

ADMIN = "rule:admin_required"
SYSTEM_READER = "(role:reader and system_scope:all)"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or {SYSTEM_READER}"

POLICIES: dict[str, str] = {
    # Shared building blocks (names as in keystone/common/policies/base.py).
    "admin_required": "role:admin or is_admin:1",
    "service_role": "role:service",
    "service_or_admin": "rule:admin_required or rule:service_role",
    "owner": "user_id:%(user_id)s",
    "admin_or_owner": "rule:admin_required or rule:owner",
    "token_subject": "user_id:%(target.token.user_id)s",
    "admin_or_token_subject": "rule:admin_required or rule:token_subject",
    "service_admin_or_token_subject": "rule:service_or_admin or rule:token_subject",
    # Tokens.
    "identity:validate_token": f"rule:service_admin_or_token_subject or {SYSTEM_READER}",
    "identity:check_token": f"rule:admin_or_token_subject or {SYSTEM_READER}",
    "identity:revoke_token": "rule:admin_or_token_subject",
    # Catalog.
    "identity:list_services": ADMIN_OR_SYSTEM_READER,
    "identity:get_service": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints": ADMIN_OR_SYSTEM_READER,
    "identity:get_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:list_regions": "",
    "identity:get_region": "",
    # Domains.
    "identity:get_domain": f"{ADMIN_OR_SYSTEM_READER} or domain_id:%(target.domain.id)s"
                           " or project_domain_id:%(target.domain.id)s",
    "identity:list_domains": ADMIN_OR_SYSTEM_READER,
    # Projects.
    "identity:get_project": f"{ADMIN_OR_SYSTEM_READER}"
                            " or (role:reader and domain_id:%(target.project.domain_id)s)"
                            " or project_id:%(target.project.id)s",
    "identity:list_projects": f"{ADMIN_OR_SYSTEM_READER}"
                              " or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:list_user_projects": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.user.id)s",
    "identity:create_project": f"{ADMIN}"
                               " or (role:manager and domain_id:%(target.project.domain_id)s)",
    "identity:update_project": f"{ADMIN}"
                               " or (role:manager and domain_id:%(target.project.domain_id)s)",
    "identity:delete_project": f"{ADMIN}"
                               " or (role:manager and domain_id:%(target.project.domain_id)s)",
    # Users.
    "identity:get_user": f"{ADMIN_OR_SYSTEM_READER}"
                         " or (role:reader and domain_id:%(target.user.domain_id)s)"
                         " or user_id:%(target.user.id)s",
    "identity:list_users": f"{ADMIN_OR_SYSTEM_READER}"
                           " or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:create_user": f"{ADMIN}"
                            " or (role:manager and domain_id:%(target.user.domain_id)s)",
    "identity:update_user": f"{ADMIN}"
                            " or (role:manager and domain_id:%(target.user.domain_id)s)",
    "identity:delete_user": f"{ADMIN}"
                            " or (role:manager and domain_id:%(target.user.domain_id)s)",
    "identity:change_password": "rule:admin_or_owner",
    # Roles and implied roles.
    "identity:get_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_roles": f"{ADMIN_OR_SYSTEM_READER} or role:manager",
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:get_implied_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_implied_roles": ADMIN_OR_SYSTEM_READER,
    "identity:list_role_inference_rules": ADMIN_OR_SYSTEM_READER,
    "identity:create_implied_role": ADMIN,
    "identity:delete_implied_role": ADMIN,
    # Grants and assignments.
    "identity:check_grant": f"{ADMIN_OR_SYSTEM_READER}"
                            " or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:list_grants": f"{ADMIN_OR_SYSTEM_READER}"
                            " or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:create_grant": f"{ADMIN} or (role:manager and domain_id:%(target.domain_id)s)",
    "identity:revoke_grant": f"{ADMIN} or (role:manager and domain_id:%(target.domain_id)s)",
    "identity:list_role_assignments": f"{ADMIN_OR_SYSTEM_READER}"
                                      " or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:list_system_grants_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:check_system_grant_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:create_system_grant_for_user": ADMIN,
    "identity:revoke_system_grant_for_user": ADMIN,
    # Application credentials.
    "identity:get_application_credential": f"{ADMIN_OR_SYSTEM_READER} or rule:owner",
    "identity:list_application_credentials": f"{ADMIN_OR_SYSTEM_READER} or rule:owner",
    "identity:create_application_credential": "user_id:%(user_id)s",
    "identity:delete_application_credential": f"{ADMIN} or rule:owner",
}
