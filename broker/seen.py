"""Which deliveries an agency's system has already taken, so a re-sent one is acknowledged
and not handed to the application twice (the broker's outbox re-sends deliveries whose
confirmation it has not recorded: broker/gateway/outbox.py).

Kept by delivery id (with the alert contact: an escalated alert is the same delivery for
someone else, and must reach them), bounded to the newest `bound` ids, and, for an agency
with a home, in the file `seen-deliveries` there: one id a line, appended and flushed as
each delivery is taken (a process restart keeps them), fsynced every `sync_every` ids and on
close (a power loss may forget the last few; JetStream redelivers those as it would anyway).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import IO

__all__ = ["SEEN_FILE", "SeenDeliveries"]

SEEN_FILE = "seen-deliveries"


class SeenDeliveries:
    """The newest `bound` delivery keys taken; `path` None keeps them in memory only."""

    def __init__(self, path: Path | None, bound: int = 100_000, sync_every: int = 256) -> None:
        self._path = path
        self._bound = bound
        self._sync_every = sync_every
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._file: IO[str] | None = None
        self._unsynced = 0
        self._lines = 0  # in the file: compacted once it holds twice the bound
        if path is not None and path.is_file():
            lines = path.read_text(encoding="ascii").splitlines()
            for line in lines:
                self._remember(line)
            self._lines = len(lines)
            if self._lines > 2 * bound:
                self._compact()

    @staticmethod
    def key(delivery_id: str, contact: str | None) -> str:
        return delivery_id if contact is None else f"{delivery_id} {contact}"

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        if key in self._keys:
            return
        self._remember(key)
        if self._path is None:
            return
        if self._file is None:
            self._file = self._path.open("a", encoding="ascii")
        self._file.write(key + "\n")
        self._file.flush()
        self._unsynced += 1
        self._lines += 1
        if self._lines > 2 * self._bound:
            self._compact()
        elif self._unsynced >= self._sync_every:
            self.sync()

    def sync(self) -> None:
        if self._file is not None and self._unsynced:
            os.fsync(self._file.fileno())
            self._unsynced = 0

    def close(self) -> None:
        self.sync()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _remember(self, key: str) -> None:
        if not key:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._bound:
            self._keys.popitem(last=False)

    def _compact(self) -> None:
        if self._path is None:
            return
        self.close()  # reopened for the next append
        _compact(self._path, self._keys)
        self._lines = len(self._keys)


def _compact(path: Path, keys: OrderedDict[str, None]) -> None:
    """Rewrite the file with only the ids kept (atomic: write aside, fsync, rename)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="ascii") as out:
        out.writelines(k + "\n" for k in keys)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
