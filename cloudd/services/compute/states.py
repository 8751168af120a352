"""Nova's vm_states, task_states and the API status derived from them
(nova/compute/vm_states.py, task_states.py, api/openstack/common.py)."""

from __future__ import annotations

# vm_state: what the instance is.
ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
RESCUED = "rescued"
RESIZED = "resized"
SOFT_DELETED = "soft-delete"
DELETED = "deleted"
ERROR = "error"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# task_state: what is being done to it (None when nothing is).
SCHEDULING = "scheduling"
BLOCK_DEVICE_MAPPING = "block_device_mapping"
NETWORKING = "networking"
SPAWNING = "spawning"
IMAGE_SNAPSHOT = "image_snapshot"
IMAGE_BACKUP = "image_backup"
IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
IMAGE_PENDING_UPLOAD = "image_pending_upload"
IMAGE_UPLOADING = "image_uploading"
UPDATING_PASSWORD = "updating_password"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
REBOOTING = "rebooting"
REBOOT_PENDING = "reboot_pending"
REBOOT_STARTED = "reboot_started"
REBOOTING_HARD = "rebooting_hard"
REBOOT_PENDING_HARD = "reboot_pending_hard"
REBOOT_STARTED_HARD = "reboot_started_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBUILDING = "rebuilding"
REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
REBUILD_SPAWNING = "rebuild_spawning"
MIGRATING = "migrating"
DELETING = "deleting"
SOFT_DELETING = "soft-deleting"
RESTORING = "restoring"

_RESIZE = {t: "RESIZE" for t in (RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED,
                                   RESIZE_FINISH)}
_REBUILD = {t: "REBUILD" for t in (REBUILDING, REBUILD_BLOCK_DEVICE_MAPPING,
                                     REBUILD_SPAWNING)}

_STATUS = {
    ACTIVE: {"default": "ACTIVE",
             REBOOTING: "REBOOT", REBOOT_PENDING: "REBOOT", REBOOT_STARTED: "REBOOT",
             REBOOTING_HARD: "HARD_REBOOT", REBOOT_PENDING_HARD: "HARD_REBOOT",
             REBOOT_STARTED_HARD: "HARD_REBOOT",
             UPDATING_PASSWORD: "PASSWORD", MIGRATING: "MIGRATING",
             **_REBUILD, **_RESIZE},
    BUILDING: {"default": "BUILD"},
    STOPPED: {"default": "SHUTOFF", **_RESIZE, **_REBUILD},
    RESIZED: {"default": "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
    PAUSED: {"default": "PAUSED", MIGRATING: "MIGRATING"},
    SUSPENDED: {"default": "SUSPENDED"},
    RESCUED: {"default": "RESCUE"},
    ERROR: {"default": "ERROR", **_REBUILD},
    DELETED: {"default": "DELETED"},
    SOFT_DELETED: {"default": "SOFT_DELETED"},
    SHELVED: {"default": "SHELVED"},
    SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
}


def status(vm_state: str, task_state: str | None) -> str:
    """The API's ``status`` for a vm_state and task_state (Nova's status_from_state)."""
    by_task = _STATUS.get(vm_state, {"default": "UNKNOWN"})
    return by_task.get(task_state, by_task["default"]) if task_state else by_task["default"]


def states_for_status(value: str) -> list[str]:
    """The vm_states behind an API status (for ``?status=`` filters); [] if none."""
    value = value.upper()
    return [vm for vm, by_task in _STATUS.items() if by_task["default"] == value]
