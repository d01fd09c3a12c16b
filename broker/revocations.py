"""Tokens signed out before they expire: a server-side revocation list, persisted.

Signing out of the web inbox must end the session, not just drop a cookie the caller may
have copied. Each revoked token is kept by its id (`jti`; the SHA-256 of the token where
it has none) with its expiry, in a JSON file in the home (0600) that every API process
re-reads when it changes; an entry is dropped once its token would have expired anyway,
so the file stays as small as the number of live signed-out sessions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from threading import Lock
from typing import Any

__all__ = ["Revocations", "token_id"]


def token_id(token: str, claims: dict[str, Any]) -> str:
    """What a revocation names: the `jti` claim, else a hash of the whole token."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return f"jti:{jti}"
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class Revocations:
    """Revoked token ids and when each token expires; in `path` if given, else in memory."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = Lock()
        self._stamp: float | None = None
        self._held: dict[str, float] = {}

    @classmethod
    def at(cls, path: Path | None) -> Revocations:
        return cls(path)

    def holds(self, ident: str) -> bool:
        with self._lock:
            self._reload()
            return self._held.get(ident, 0.0) > time.time()

    def add(self, ident: str, expires: float) -> None:
        with self._lock:
            self._reload()
            now = time.time()
            self._held = {k: v for k, v in self._held.items() if v > now}
            self._held[ident] = max(expires, now + 60)  # a clock-skewed exp still counts
            self._save()

    def _reload(self) -> None:
        if self._path is None:
            return
        try:
            stamp = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if stamp != self._stamp:
            try:
                loaded = json.loads(self._path.read_text())
            except (OSError, ValueError):
                loaded = {}  # a torn or emptied file: keep what this process knows
            if isinstance(loaded, dict):
                self._held.update({str(k): float(v) for k, v in loaded.items()})
            self._stamp = stamp

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self._held, fh)
        staging.replace(self._path)
        with contextlib.suppress(FileNotFoundError):
            self._stamp = self._path.stat().st_mtime_ns
