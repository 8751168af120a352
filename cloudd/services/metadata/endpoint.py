"""The metadata service on the controller: GET /agent/v1/metadata/{path}.

Guests never reach the controller: each agent's metadata proxy
(``cloudd/agent/metadata_proxy.py``) takes the guest's request on its
network's bridge and forwards it here with the agent's host credential
(``Authorization: Bearer HOST:SECRET``) and two headers:

- ``X-Cloudd-Network-Id``: the network whose bridge the request came in on;
- ``X-Forwarded-For``: the guest's source address.

The answer is for the one instance whose port on that network has that
address and is bound to the calling agent's host (``binding:host_id``), the
instance being on that host too; so an agent can only ever read its own
guests' metadata, and a guest only its own. Anything else
is a 404 as Nova's metadata API gives (``/`` lists the EC2 versions without
looking anyone up, as Nova does). Bodies and media types are Nova's
(``tree.lookup``).
"""

from __future__ import annotations

import ipaddress
import logging
import posixpath

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute.agent_auth import parse_authorization
from cloudd.services.compute.protocol import PATH
from cloudd.services.metadata import documents, tree
from cloudd.web.auth import public

log = logging.getLogger("cloudd.metadata")

NETWORK_HEADER = "X-Cloudd-Network-Id"
FORWARDED_HEADER = "X-Forwarded-For"
METADATA_PATH = PATH + "/metadata"

NOT_FOUND = b"404 Not Found\n\nThe resource could not be found.\n\n"


def _text(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/plain", charset="UTF-8")


def _address(value: str | None) -> str | None:
    """The guest's address, normalised; None when it is not one address."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.split(",")[-1].strip()))
    except ValueError:
        return None


async def find_instance(conn, host: str, network_id: str, address: str) -> str | None:
    """The uuid of the live instance whose port on ``network_id`` has ``address``
    and is bound to ``host``, with the instance on ``host`` too (None if there is
    not exactly one)."""
    P, A, I = t.port, t.ip_allocation, t.instance
    rows = (await conn.execute(
        select(P.c.device_id)
        .select_from(A.join(P, P.c.id == A.c.port_id).join(I, I.c.uuid == P.c.device_id))
        .where(A.c.network_id == network_id, A.c.ip_address == address,
               P.c.network_id == network_id, P.c.binding_host_id == host,
               P.c.device_owner.like("compute:%"), I.c.host == host,
               I.c.deleted.is_(False)))).all()
    found = {r.device_id for r in rows}
    if len(found) > 1:
        log.warning("two instances on one host share an address", extra={"fields": {
            "host": host, "network_id": network_id, "address": address}})
    return found.pop() if len(found) == 1 else None


@public
async def metadata(request: web.Request) -> web.Response:
    cloud = request.config_dict["cloud"]
    creds = parse_authorization(request.headers.get("Authorization"))
    if creds is None or not await cloud.compute.hub.auth.check(*creds):
        return _text(401, b"The host credential is not valid.")
    host = creds[0]
    path = request.match_info.get("path", "")
    if posixpath.normpath("/" + path) == "/":
        return _text(200, tree.ROOT_LISTING)
    network_id = request.headers.get(NETWORK_HEADER, "").strip()
    address = _address(request.headers.get(FORWARDED_HEADER))
    if not network_id or address is None:
        return _text(400, f"{NETWORK_HEADER} and {FORWARDED_HEADER} (one address) "
                          "are required.".encode())
    async with cloud.db.read() as conn:
        uuid = await find_instance(conn, host, network_id, address)
        md = None
        if uuid is not None:
            md = await documents.instance_metadata(cloud, conn, uuid, address=address)
    if md is None:
        log.info("no instance for a metadata request", extra={"fields": {
            "host": host, "network_id": network_id, "address": address}})
        return _text(404, NOT_FOUND)
    try:
        body, media = tree.lookup(md, path)
    except documents.NotFound:
        return _text(404, NOT_FOUND)
    if media == documents.TEXT:
        return _text(200, body)
    return web.Response(body=body, content_type=media)


def mount(app: web.Application) -> None:
    app.router.add_get(METADATA_PATH, metadata)
    app.router.add_get(METADATA_PATH + "/{path:.*}", metadata)
