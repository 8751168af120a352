"""The controller <-> agent wire protocol (JSON text frames over a websocket).

Versioned as Nova's objects are: ``hello`` carries the agent's protocol
version; the controller speaks every version from MIN_VERSION to VERSION and
refuses others with a ``refused`` frame naming both ranges, then closes.

agent -> controller
  {"type": "hello", "protocol": 1, "host": NAME,
   "resources": {"hypervisor_hostname", "vcpus", "memory_mb", "disk_gb",
                 "hypervisor_type", "hypervisor_version", "cpu_info", "host_ip"},
   "inventory": {"VCPU": {"total", "reserved", "allocation_ratio", ...}, ...},
   "instances": [{"uuid", "power_state"}], "busy": [INSTANCE],
   "done": {COMMAND_ID: RESULT, ...}}          # results not yet acknowledged
  {"type": "heartbeat"}
  {"type": "result", "id": COMMAND_ID, "result": RESULT}
  {"type": "event", "uuid": INSTANCE, "power_state": N}
  {"type": "sync", "instances": [{"uuid", "power_state"}], "busy": [INSTANCE]}
                                               # every instance, every ~60 s
  {"type": "reply", "id": CALL_ID, "ok": bool, "data": ..., "error": str}

controller -> agent
  {"type": "welcome", "protocol": N, "heartbeat_interval": S}
  {"type": "refused", "reason": str}
  {"type": "command", "id": COMMAND_ID, "op": OP, "args": {...}}
  {"type": "ack", "id": COMMAND_ID}            # the result is stored: forget it
  {"type": "call", "id": CALL_ID, "op": OP, "args": {...}}   # not durable

``instances`` (in hello and sync) lists every guest the driver has except
those ``busy`` with a command (their results tell their state).
Authentication: ``Authorization: Bearer HOST:SECRET`` on the upgrade
request (SECRET from ``cloudd host add HOST``); a bad one is a plain 401.
Commands arrive in ``created_at`` order; the agent runs one instance's
commands strictly in order and different instances' concurrently. A command
id seen before is not run again: its stored result is sent again.

RESULT is {"ok": bool, "error": str | None, "retryable": bool,
           "power_state": int | None, "data": {...}}.

Commands (durable, from the outbox; idempotent on the agent):
  spawn     {"spec": InstanceSpec as a dict}
  destroy   {"uuid"}
  reboot    {"uuid", "hard": bool}
  power_off {"uuid", "timeout": s}     power_on {"uuid"}
  pause / unpause / suspend / resume  {"uuid"}
  resize    {"uuid", "spec"}           # same-host resize to spec's sizes
  rebuild   {"spec"}                   # destroy then spawn from spec's image
  snapshot  {"uuid", "image_id"}       # upload the root disk to PUT
                                       # /agent/v1/images/IMAGE/file (queued image)
  network_update {"uuid", "network_info": [vif]}
                                       # re-apply the instance's security group
                                       # rules and DHCP entries on the host
                                       # (``HostNetwork.update``; a no-op for the
                                       # fake driver)
  security_group_members {"group_id", "members": {"version": int,
                          "IPv4": [PREFIX], "IPv6": [PREFIX]}}
                                       # the addresses of a security group's
                                       # ports, for the rules of this host's vifs
                                       # that name it as remote group (one nft
                                       # set per group and ethertype); sent to
                                       # each host with such a vif when members
                                       # come, go or change address, one per
                                       # host and group, updated in place while
                                       # unsent. The agent keeps the highest
                                       # ``version`` (a vif's own
                                       # ``security_group_members`` too). An
                                       # older agent answers "unknown command".
  attach_interface {"uuid", "vif"}     # hot-plug one more vif (host plumbing
                                       # first); the guest keeps it across restarts
  detach_interface {"uuid", "port_id", "vif"}
                                       # unplug it (succeeds when already gone);
                                       # an older agent answers "unknown command":
                                       # the attach fails cleanly, the port given back

The spec of spawn/rebuild/resize carries ``network_info`` (a list of vifs,
docs/network-design.md) and ``config_drive`` ({"files": {PATH: BASE64}} or
null); an older agent ignores spec fields it does not know.
Calls (answered at once, never queued):
  console_output {"uuid", "lines": int | None} -> data {"output": str}
  console_info {"uuid", "kind": "vnc" | "serial"} -> data {"host": str, "port": int}
                                       # where the running guest's console listens,
                                       # or {} when it has none (an older agent
                                       # answers "unknown call": no console either)
"""

VERSION = 1
MIN_VERSION = 1

COMMANDS = frozenset({"spawn", "destroy", "reboot", "power_off", "power_on", "pause",
                      "unpause", "suspend", "resume", "resize", "rebuild", "snapshot",
                      "network_update", "attach_interface", "detach_interface",
                      "security_group_members"})
CALLS = frozenset({"console_output", "console_info"})

# The websocket endpoint on the controller's main port.
PATH = "/agent/v1"
