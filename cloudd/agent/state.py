"""The agent's own durable state: results the controller has not acknowledged.

Kept in ``STATE_DIR/state.json`` (written to a temporary file and renamed,
so a crash leaves the old or the new file, never half of one), so a
restarted agent reports a finished command instead of running it again.
Recently acknowledged ids are kept too, to recognise a late duplicate.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("cloudd.agent")

KEEP_ACKED = 2000


class AgentState:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "state.json"
        self.results: dict[str, dict] = {}
        self.acked: OrderedDict[str, None] = OrderedDict()
        self._dirty = False

    def load(self) -> AgentState:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as e:
            log.warning("agent state file unreadable; starting afresh",
                        extra={"fields": {"path": str(self.path), "error": str(e)}})
            return self
        self.results = {k: v for k, v in (data.get("results") or {}).items()
                        if isinstance(v, dict)}
        self.acked = OrderedDict((k, None) for k in data.get("acked") or [])
        return self

    def add_result(self, command_id: str, result: dict) -> None:
        self.results[command_id] = result
        self.save()

    def ack(self, command_id: str) -> None:
        if self.results.pop(command_id, None) is not None:
            self.acked[command_id] = None
            while len(self.acked) > KEEP_ACKED:
                self.acked.popitem(last=False)
            self._dirty = True

    def was_acked(self, command_id: str) -> bool:
        return command_id in self.acked

    def flush(self) -> None:
        if self._dirty:
            self.save()

    def save(self) -> None:
        tmp = self.path.with_name(f".state.{os.getpid()}.tmp")
        data = json.dumps({"results": self.results, "acked": list(self.acked)})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)
        self._dirty = False
