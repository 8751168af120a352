"""cloudd's policy engine: oslo.policy's rule language without oslo.

Typical use::

    defaults = {
        "admin": "role:admin",
        "get": "rule:admin or project_id:%(target.project.id)s",
    }
    enforcer = Enforcer(defaults, Path("/etc/cloudd/policy.yaml"))
    enforcer.authorize("get", target, context.to_policy_values())
"""

from cloudd.policy.enforcer import (
    Enforcer,
    InvalidScope,
    PolicyNotAuthorized,
    flatten_target,
    token_scope,
)
from cloudd.policy.parser import Check, parse_rule

__all__ = [
    "Check",
    "Enforcer",
    "InvalidScope",
    "PolicyNotAuthorized",
    "flatten_target",
    "parse_rule",
    "token_scope",
]
