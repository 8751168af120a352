"""Neutron's policy rules and their secure-RBAC defaults (neutron/conf/policies/*.py).

Neutron's ``field:networks:shared=True`` checks are written as literal checks on
the target (``'True':%(shared)s``); a subnet's or port's target carries its
network's owner as ``network:project_id``, as Neutron's does.
"""

from __future__ import annotations

ADMIN = "rule:admin_only"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
NET_OWNER_MEMBER = "role:member and project_id:%(network:project_id)s"
NET_OWNER_READER = "role:reader and project_id:%(network:project_id)s"
ADMIN_OR_PROJECT_MEMBER = f"({ADMIN}) or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"({ADMIN}) or ({PROJECT_READER})"
ADMIN_OR_NET_OWNER_MEMBER = f"({ADMIN}) or ({NET_OWNER_MEMBER})"
ADMIN_OR_NET_OWNER_READER = f"({ADMIN}) or ({NET_OWNER_READER})"

POLICIES: dict[str, str] = {
    "context_is_admin": "role:admin",
    "admin_only": "rule:context_is_admin",
    "regular_user": "",
    "shared": "'True':%(shared)s",
    "external": "'True':%(router:external)s",
    "network_device": "'True':%(network_device)s",
    # networks
    "create_network": ADMIN_OR_PROJECT_MEMBER,
    "create_network:shared": ADMIN,
    "create_network:router:external": ADMIN,
    "create_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "create_network:provider:network_type": ADMIN,
    "create_network:provider:physical_network": ADMIN,
    "create_network:provider:segmentation_id": ADMIN,
    "get_network": f"{ADMIN_OR_PROJECT_READER} or rule:shared or rule:external",
    "get_network:router:external": "rule:regular_user",
    "get_network:provider:network_type": ADMIN,
    "get_network:provider:physical_network": ADMIN,
    "get_network:provider:segmentation_id": ADMIN,
    "update_network": ADMIN_OR_PROJECT_MEMBER,
    "update_network:shared": ADMIN,
    "update_network:router:external": ADMIN,
    "update_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "update_network:provider:network_type": ADMIN,
    "update_network:provider:physical_network": ADMIN,
    "update_network:provider:segmentation_id": ADMIN,
    "delete_network": ADMIN_OR_PROJECT_MEMBER,
    # subnets
    "create_subnet": ADMIN_OR_NET_OWNER_MEMBER,
    "get_subnet": f"{ADMIN_OR_PROJECT_READER} or rule:shared",
    "update_subnet": ADMIN_OR_NET_OWNER_MEMBER,
    "delete_subnet": ADMIN_OR_NET_OWNER_MEMBER,
    # ports
    "create_port": ADMIN_OR_PROJECT_MEMBER,
    "create_port:device_owner": f"not rule:network_device or {ADMIN_OR_NET_OWNER_MEMBER}",
    "create_port:mac_address": ADMIN_OR_NET_OWNER_MEMBER,
    "create_port:fixed_ips": f"{ADMIN_OR_NET_OWNER_MEMBER} or rule:shared",
    "create_port:fixed_ips:ip_address": ADMIN_OR_NET_OWNER_MEMBER,
    "create_port:port_security_enabled": ADMIN_OR_NET_OWNER_MEMBER,
    "create_port:binding:host_id": ADMIN,
    "create_port:binding:profile": ADMIN,
    "get_port": f"{ADMIN_OR_PROJECT_READER} or ({NET_OWNER_READER})",
    "get_port:binding:vif_type": ADMIN,
    "get_port:binding:vif_details": ADMIN,
    "get_port:binding:host_id": ADMIN,
    "get_port:binding:profile": ADMIN,
    "update_port": f"{ADMIN_OR_PROJECT_MEMBER} or ({NET_OWNER_MEMBER})",
    "update_port:device_owner": f"not rule:network_device or {ADMIN_OR_NET_OWNER_MEMBER}",
    "update_port:mac_address": ADMIN,
    "update_port:fixed_ips": ADMIN_OR_NET_OWNER_MEMBER,
    "update_port:fixed_ips:ip_address": ADMIN_OR_NET_OWNER_MEMBER,
    "update_port:port_security_enabled": ADMIN_OR_NET_OWNER_MEMBER,
    "update_port:binding:host_id": ADMIN,
    "update_port:binding:profile": ADMIN,
    "delete_port": f"{ADMIN_OR_PROJECT_MEMBER} or ({NET_OWNER_MEMBER})",
    # security groups and rules
    "create_security_group": ADMIN_OR_PROJECT_MEMBER,
    "get_security_group": ADMIN_OR_PROJECT_READER,
    "update_security_group": ADMIN_OR_PROJECT_MEMBER,
    "delete_security_group": ADMIN_OR_PROJECT_MEMBER,
    "create_security_group_rule": ADMIN_OR_PROJECT_MEMBER,
    "get_security_group_rule": ADMIN_OR_PROJECT_READER,
    "delete_security_group_rule": ADMIN_OR_PROJECT_MEMBER,
    # quotas
    "get_quota": ADMIN_OR_PROJECT_READER,
    "update_quota": ADMIN,
    "delete_quota": ADMIN,
}

SCOPE_TYPES: dict[str, list[str]] = {
    name: ["project"] for name in POLICIES
    if name not in ("context_is_admin", "admin_only", "regular_user",
                    "shared", "external", "network_device")}
