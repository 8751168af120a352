"""os-instance_usage_audit_log (admin only): the instance usage audit of the
last completed audit period (a month, Nova's default
``instance_usage_audit_period``) across the compute hosts.

cloudd runs no periodic usage audit (Nova's ``instance_usage_audit`` is off
by default too), so there are no task logs: every nova-compute host is
"not run" and the totals are zero, exactly as Nova reports a cloud whose
computes have not audited.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from cloudd.services.compute import common, hosts, service_store
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-instance-usage-audit-log:%s"


def last_completed_period(before: datetime | None = None) -> tuple[datetime, datetime]:
    """Nova's utils.last_completed_audit_period for the 'month' unit."""
    now = before or utcnow()
    end = datetime(now.year, now.month, 1)
    begin = datetime(end.year - 1, 12, 1) if end.month == 1 else \
        datetime(end.year, end.month - 1, 1)
    return begin, end


async def _log(request: web.Request, before: datetime | None = None) -> dict:
    begin, end = last_completed_period(before)
    async with common.cloud(request).db.read() as conn:
        services = await service_store.all_services(conn, binary=hosts.COMPUTE_BINARY)
    host_names = sorted({s.host for s in services})
    done = 0
    return {"period_beginning": str(begin), "period_ending": str(end),
            "num_hosts": len(host_names), "num_hosts_done": done,
            "num_hosts_running": 0, "num_hosts_not_run": len(host_names),
            "hosts_not_run": host_names, "total_instances": 0, "total_errors": 0,
            "overall_status": ("ALL" if done == len(host_names)
                               else f"{done} of {len(host_names)}") + " hosts done. 0 errors.",
            "log": {}}


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "list", {})
    return web.json_response({"instance_usage_audit_logs": await _log(request)})


async def show(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "show", {})
    raw = request.match_info["before"]
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in raw else "%Y-%m-%d %H:%M:%S"
    try:
        before = datetime.strptime(raw, fmt)
    except ValueError:
        raise ApiError(400, f"Invalid timestamp for date {raw}") from None
    return web.json_response({"instance_usage_audit_log": await _log(request, before)})


ROUTES = {
    "/os-instance_usage_audit_log": {"GET": (index, None)},
    "/os-instance_usage_audit_log/{before}": {"GET": (show, None)},
}

POLICIES = {ROOT % "list": ADMIN, ROOT % "show": ADMIN}
