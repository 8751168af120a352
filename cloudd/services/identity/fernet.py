"""Fernet key repository, laid out as keystone-manage lays it out.

Keys are files named by number in one 0700 directory, each 0600: ``0`` is the
staged key, the highest number is the primary (which encrypts), everything
else is a secondary kept for decrypting tokens issued before a rotation.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# cryptography (with its OpenSSL) is imported on the first token issued or
# validated, not at start: an idle server does not carry its ~6 MB.

# Seconds between looks at the key directory for a rotation made elsewhere.
STAT_INTERVAL = 1.0


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3) -> None:
        self.path = path
        self.max_active_keys = max_active_keys
        self._fernet: MultiFernet | None = None
        self._seen_mtime = 0
        self._next_stat = 0.0

    def _numbers(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write_key(self, number: int) -> None:
        tmp = self.path / f".{number}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            # what Fernet.generate_key() makes: 32 random bytes, urlsafe base64
            f.write(base64.urlsafe_b64encode(os.urandom(32)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / str(number))

    def setup(self) -> bool:
        """Create the repository with a staged and a primary key if it is empty."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        if self._numbers():
            return False
        self._write_key(0)
        self.rotate()
        return True

    def rotate(self) -> int:
        """Promote the staged key to primary, stage a new one, drop the oldest."""
        numbers = self._numbers()
        new_primary = max(numbers) + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        self._write_key(0)
        secondaries = [n for n in self._numbers() if n not in (0, new_primary)]
        excess = len(secondaries) + 2 - self.max_active_keys
        for n in secondaries[:max(0, excess)]:
            (self.path / str(n)).unlink()
        self._fernet = None
        return new_primary

    def fernet(self) -> MultiFernet:
        # A rotation by `cloudd token-keys rotate` in another process changes
        # the directory's mtime: pick the new keys up without a restart,
        # looking at most once a second (the staged key, which a rotation
        # promotes, is already loaded, so tokens it issues validate here).
        now = time.monotonic()
        if self._fernet is None or now >= self._next_stat:
            self._next_stat = now + STAT_INTERVAL
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._seen_mtime:
                self._fernet, self._seen_mtime = None, mtime
        if self._fernet is None:
            from cryptography.fernet import Fernet, MultiFernet

            numbers = self._numbers()
            if not numbers:
                raise RuntimeError(f"no fernet keys in {self.path}")
            order = sorted(numbers, reverse=True)  # primary first, staged last
            self._fernet = MultiFernet(
                [Fernet((self.path / str(n)).read_bytes().strip()) for n in order])
        return self._fernet

    def encrypt(self, data: bytes) -> str:
        return self.fernet().encrypt(data).rstrip(b"=").decode()

    def decrypt(self, token: str, ttl: int | None = None) -> bytes | None:
        """Plain bytes, or None for anything that is not a token of ours."""
        from cryptography.fernet import InvalidToken

        padded = token + "=" * (-len(token) % 4)
        try:
            return self.fernet().decrypt(padded.encode(), ttl=ttl)
        except (InvalidToken, ValueError, TypeError):
            return None
