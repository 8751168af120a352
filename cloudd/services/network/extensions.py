"""/v2.0/extensions: the Neutron API extensions cloudd really implements."""

from __future__ import annotations

from aiohttp import web

from cloudd.services.network.common import error, reply

_T = "2000-01-01T10:00:00-00:00"
EXTENSIONS = [
    ("binding", "Port Binding", ("Expose port bindings of a virtual port to external "
                                "application")),
    ("external-net", "Neutron external network", ("Adds external network attribute to "
                                                 "network resource.")),
    ("l2_adjacency", "L2 Adjacency", "Display L2 Adjacency for Neutron Networks."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", ("Provides a writable MTU attribute for a "
                                                   "network resource.")),
    ("pagination", "Pagination support", ("Extension that indicates that pagination is "
                                         "enabled.")),
    ("port-security", "Port Security", "Provides port security"),
    ("project-id", "project_id field enabled", ("Extension that indicates that project_id "
                                               "field is enabled.")),
    ("provider", "Provider Network", ("Expose mapping of virtual networks to physical "
                                     "networks")),
    ("quota_details", "Quota details management support", ("Expose functions for quotas "
                                                          "usage statistics per project")),
    ("quota-check-limit", "Quota engine limit check",
     "Support for checking the resource usage before applying a new quota limit"),
    ("quotas", "Quota management support", ("Expose functions for quotas management per "
                                           "tenant")),
    ("security-group", "security-group", "The security groups extension."),
    ("security-groups-normalized-cidr", "Security Group Rules Normalized CIDR",
     "Add new field with normalized remote_ip_prefix cidr in SG rule"),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("standard-attr-description", "standard-attr-description", ("Extension to add "
                                                               "descriptions to standard "
                                                               "attributes")),
    ("standard-attr-revisions", "Resource revision numbers", ("This extension will display "
                                                             "the revision number of "
                                                             "neutron resources.")),
    ("standard-attr-tag", ("Tag support for resources with standard attribute: network, "
     "subnet, port, security_group"), ("Enables to set tag on resources with standard "
                                      "attribute.")),
    ("standard-attr-timestamp", "Resource timestamps", ("Adds created_at and updated_at "
                                                       "fields to all Neutron resources "
                                                       "that have Neutron standard "
                                                       "attributes.")),
    ("stateful-security-group", "Stateful security group", ("Indicates if the security "
                                                           "group is stateful or not")),
]


def _item(alias: str, name: str, description: str) -> dict:
    return {"alias": alias, "name": name, "description": description, "updated": _T,
            "links": []}


async def list_extensions(request: web.Request) -> web.Response:
    return reply({"extensions": [_item(*e) for e in EXTENSIONS]})


async def show_extension(request: web.Request) -> web.Response:
    alias = request.match_info["alias"]
    for ext in EXTENSIONS:
        if ext[0] == alias:
            return reply({"extension": _item(*ext)})
    raise error(404, "HTTPNotFound", f"Extension with alias {alias} does not exist")


ROUTES = [
    ("GET", "/v2.0/extensions", list_extensions),
    ("GET", "/v2.0/extensions/{alias}", show_extension),
]
