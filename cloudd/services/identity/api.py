"""The identity API: version documents and the route table."""

from __future__ import annotations

from aiohttp import web

from cloudd.services.identity import (
    app_creds,
    assignments,
    auth,
    catalog_api,
    projects,
    roles,
    users,
)
from cloudd.services.identity.policies import POLICIES
from cloudd.services.identity.views import base_url
from cloudd.web.app import ServiceSpec
from cloudd.web.auth import public
from cloudd.web.errors import identity_style

_GRANT = "/v3/{kind:projects|domains}/{target_id}/users/{user_id}/roles"
_SYSTEM_GRANT = "/v3/{kind:system}/users/{user_id}/roles"
_INHERIT = "/v3/OS-INHERIT/{kind:projects|domains}/{target_id}/users/{user_id}/roles"


def _version(request: web.Request) -> dict:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": base_url(request) + "/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": {"values": [_version(request)]}}, status=300)


@public
async def version_v3(request: web.Request) -> web.Response:
    return web.json_response({"version": _version(request)})


def routes() -> list[tuple[str, str, object]]:
    r = [
        ("GET", "/", versions),
        ("GET", "/v3", version_v3),
        ("GET", "/v3/", version_v3),
        ("POST", "/v3/auth/tokens", auth.issue_token),
        ("GET", "/v3/auth/tokens", auth.validate_token),
        ("HEAD", "/v3/auth/tokens", auth.check_token),
        ("DELETE", "/v3/auth/tokens", auth.revoke_token),
        ("GET", "/v3/auth/catalog", auth.auth_catalog),
        ("GET", "/v3/auth/projects", auth.auth_projects),
        ("GET", "/v3/auth/domains", auth.auth_domains),
        ("GET", "/v3/auth/system", auth.auth_system),
        ("GET", "/v3/domains", projects.list_domains),
        ("GET", "/v3/domains/{domain_id}", projects.get_domain),
        ("GET", "/v3/projects", projects.list_projects),
        ("POST", "/v3/projects", projects.create_project),
        ("GET", "/v3/projects/{project_id}", projects.get_project),
        ("PATCH", "/v3/projects/{project_id}", projects.update_project),
        ("DELETE", "/v3/projects/{project_id}", projects.delete_project),
        ("GET", "/v3/users", users.list_users),
        ("POST", "/v3/users", users.create_user),
        ("GET", "/v3/users/{user_id}", users.get_user),
        ("PATCH", "/v3/users/{user_id}", users.update_user),
        ("DELETE", "/v3/users/{user_id}", users.delete_user),
        ("POST", "/v3/users/{user_id}/password", users.change_password),
        ("GET", "/v3/users/{user_id}/projects", users.list_user_projects),
        ("GET", "/v3/users/{user_id}/application_credentials", app_creds.list_app_creds),
        ("POST", "/v3/users/{user_id}/application_credentials", app_creds.create_app_cred),
        ("GET", "/v3/users/{user_id}/application_credentials/{cred_id}",
         app_creds.get_app_cred),
        ("DELETE", "/v3/users/{user_id}/application_credentials/{cred_id}",
         app_creds.delete_app_cred),
        ("GET", "/v3/roles", roles.list_roles),
        ("POST", "/v3/roles", roles.create_role),
        ("GET", "/v3/roles/{role_id}", roles.get_role),
        ("PATCH", "/v3/roles/{role_id}", roles.update_role),
        ("DELETE", "/v3/roles/{role_id}", roles.delete_role),
        ("GET", "/v3/roles/{prior_role_id}/implies", roles.list_implied_roles),
        ("PUT", "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
         roles.create_implied_role),
        ("GET", "/v3/roles/{prior_role_id}/implies/{implied_role_id}", roles.get_implied_role),
        ("HEAD", "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
         roles.get_implied_role),
        ("DELETE", "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
         roles.delete_implied_role),
        ("GET", "/v3/role_inferences", roles.list_role_inferences),
        ("GET", "/v3/role_assignments", assignments.list_role_assignments),
        ("GET", "/v3/services", catalog_api.list_services),
        ("GET", "/v3/services/{service_id}", catalog_api.get_service),
        ("GET", "/v3/endpoints", catalog_api.list_endpoints),
        ("GET", "/v3/endpoints/{endpoint_id}", catalog_api.get_endpoint),
        ("GET", "/v3/regions", catalog_api.list_regions),
        ("GET", "/v3/regions/{region_id}", catalog_api.get_region),
    ]
    for base, suffix in ((_GRANT, ""), (_SYSTEM_GRANT, ""),
                         (_INHERIT, "/inherited_to_projects")):
        r += [
            ("GET", base + suffix, assignments.list_grants),
            ("PUT", base + "/{role_id}" + suffix, assignments.create_grant),
            ("GET", base + "/{role_id}" + suffix, assignments.check_grant),
            ("HEAD", base + "/{role_id}" + suffix, assignments.check_grant),
            ("DELETE", base + "/{role_id}" + suffix, assignments.revoke_grant),
        ]
    return r


SPEC = ServiceSpec(
    name="identity",
    error_style=identity_style,
    forbidden_message="You are not authorized to perform the requested action: {rule}.",
    routes=routes,
    policies=POLICIES,
)
