"""Remote consoles: ``POST /servers/{id}/remote-consoles`` (2.6+), the legacy
actions ``os-getVNCConsole`` / ``os-getSerialConsole`` / ``os-getSPICEConsole``
(2.1-2.5) and ``GET /os-console-auth-tokens/{token}`` (admin, 2.31+).

As Nova's compute API and manager answer: the instance must have a host
(409 "not ready") and not be deleting or migrating; a console type that is
disabled or that the hypervisor does not offer is 400 "Unavailable console
type"; a wrong type for the protocol is 400 "Invalid console type". cloudd
also refuses a guest that is not running (409, Nova's conflict text): its
console has nothing to show. The agent's ``console_info`` call says where the
guest's console listens; a one-time token (``cloudd.services.console.tokens``)
is stored with that and the URL points at cloudd's own proxy
(``cloudd.services.console.proxy``).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from aiohttp import web

from cloudd.services.compute import agent_hub, common, instance_store, servers, states
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.server_schemas import action_schema, validate
from cloudd.services.console import tokens
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

POLICY = "os_compute_api:os-remote-consoles"
TOKENS_POLICY = "os_compute_api:os-console-auth-tokens"

_TYPES_V26 = ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"]


@functools.lru_cache(maxsize=128)
def _create_schema(mv: tuple[int, int]) -> dict:
    protocols = ["vnc", "spice", "serial", "rdp"]
    types = list(_TYPES_V26)
    if mv >= (2, 8):
        protocols.append("mks")
        types.append("webmks")
    if mv >= (2, 99):
        types.append("spice-direct")
    inner = {"type": "object",
             "properties": {"protocol": {"type": "string", "enum": protocols},
                            "type": {"type": "string", "enum": types}},
             "required": ["protocol", "type"], "additionalProperties": False}
    return {"type": "object", "properties": {"remote_console": inner},
            "required": ["remote_console"], "additionalProperties": False}


GET_VNC = action_schema("os-getVNCConsole", {
    "type": {"type": "string", "enum": ["novnc", "xvpvnc"]}}, ["type"])
GET_SERIAL = action_schema("os-getSerialConsole", {
    "type": {"type": "string", "enum": ["serial"]}}, ["type"])
GET_SPICE = action_schema("os-getSPICEConsole", {
    "type": {"type": "string", "enum": ["spice-html5"]}}, ["type"])

# The guest's hypervisor process runs (its console can answer) in these states.
_RUNNING = (states.ACTIVE, states.PAUSED)
_REJECTED_TASKS = (states.DELETING, states.MIGRATING)


def unavailable(console_type) -> ApiError:
    return ApiError(400, f"Unavailable console type {console_type}.")


def invalid(console_type) -> ApiError:
    return ApiError(400, f"Invalid console type {console_type}")


def novnc_url(base: str, token: str) -> str:
    path = quote(f"console/websockify?token={token}", safe="")
    return f"{base}/console/novnc/vnc_lite.html?path={path}"


def serial_url(base: str, token: str) -> str:
    scheme, sep, rest = base.partition("://")
    ws = "wss" if scheme == "https" else "ws"
    return f"{ws}{sep}{rest}/console/serial?token={token}"


async def get_console(request, uuid: str, protocol: str, console_type) -> str:
    """The URL of a new console session of ``protocol`` on instance ``uuid``."""
    ctx = common.context(request)
    cloud = common.cloud(request)
    method = f"get_{protocol}_console"
    async with cloud.db.read() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
    ctx.authorize(POLICY, {"project_id": row.project_id})
    if not row.host:
        raise ApiError(409, f"Instance {uuid} is not ready")
    if row.task_state in _REJECTED_TASKS:
        raise ApiError(409, f"Cannot '{method}' instance {uuid} while it is in "
                            f"task_state {row.task_state}")
    if row.vm_state not in _RUNNING:
        raise ApiError(409, f"Cannot '{method}' instance {uuid} while it is in "
                            f"vm_state {row.vm_state}")
    cfg = cloud.config.console
    if protocol == "vnc":
        if not cfg.vnc_enabled:
            raise unavailable(console_type)
        if console_type != "novnc":
            raise invalid(console_type)
    elif protocol == "serial":
        if not cfg.serial_enabled:
            raise unavailable(console_type)
        if console_type != "serial":
            raise invalid(console_type)
    else:                       # spice, mks: not offered (Nova's defaults: disabled)
        raise unavailable(console_type)
    try:
        info = await common.compute(request).hub.call(
            row.host, "console_info", {"uuid": uuid, "kind": protocol}, timeout=30)
    except agent_hub.AgentUnavailable:
        raise ApiError(409, f"Instance {uuid} is not ready") from None
    except agent_hub.AgentCallFailed:
        raise unavailable(protocol) from None
    host, port = (info or {}).get("host"), (info or {}).get("port")
    if not host or not isinstance(port, int) or not 0 < port < 65536:
        raise unavailable(protocol)         # the hypervisor offers no such console
    async with cloud.db.write() as conn:
        token = await tokens.issue(conn, instance_uuid=uuid, console_type=console_type,
                                   compute_host=row.host, host=str(host), port=port,
                                   ttl=cfg.token_ttl)
    base = cloud.config.public_url
    return novnc_url(base, token) if protocol == "vnc" else serial_url(base, token)


# -- the 2.6+ resource --------------------------------------------------------------

async def create(request: web.Request) -> web.Response:
    uuid = request.match_info["server_id"]
    body = await read_json(request)
    validate(body, _create_schema(common.mv(request)))
    protocol = body["remote_console"]["protocol"]
    console_type = body["remote_console"]["type"]
    if protocol == "rdp":
        async with common.cloud(request).db.read() as conn:
            row = await instance_store.get(conn, uuid, servers.scope(request))
        common.context(request).authorize(POLICY, {"project_id": row.project_id})
        raise ApiError(400, f"Unavailable console type {protocol}.")
    url = await get_console(request, uuid, protocol, console_type)
    return web.json_response({"remote_console": {"protocol": protocol,
                                                 "type": console_type, "url": url}})


# -- the legacy actions (2.1-2.5) ------------------------------------------------

def _legacy(name: str, schema: dict, protocol: str):
    async def handler(request, uuid, body):
        if common.mv(request) > (2, 5):
            raise ApiError(404, "The resource could not be found.")
        validate(body, schema)
        console_type = body[name].get("type")
        url = await get_console(request, uuid, protocol, console_type)
        return web.json_response({"console": {"type": console_type, "url": url}})
    return handler


ACTIONS = {
    "os-getVNCConsole": _legacy("os-getVNCConsole", GET_VNC, "vnc"),
    "os-getSerialConsole": _legacy("os-getSerialConsole", GET_SERIAL, "serial"),
    "os-getSPICEConsole": _legacy("os-getSPICEConsole", GET_SPICE, "spice"),
}


# -- os-console-auth-tokens ----------------------------------------------------------

async def show_token(request: web.Request) -> web.Response:
    if common.mv(request) < (2, 31):
        raise ApiError(400, "The server could not comply with the request since it is "
                            "either malformed or otherwise incorrect.")
    common.context(request).authorize(TOKENS_POLICY, {})
    token = request.match_info["token"]
    async with common.cloud(request).db.read() as conn:
        row = await tokens.lookup(conn, token)
    if row is None:
        raise ApiError(404, "Token not found")
    return web.json_response({"console": {
        "instance_uuid": row.instance_uuid, "host": row.host, "port": row.port,
        "internal_access_path": row.internal_access_path}})


ROUTES = {
    "/servers/{server_id}/remote-consoles": {"POST": (create, (2, 6))},
    "/os-console-auth-tokens/{token}": {"GET": (show_token, None)},
}

POLICIES = {POLICY: MEMBER, TOKENS_POLICY: ADMIN}
