"""Owner-only files (0600) and directories (0700) for the deployment home.

The home holds the audit database (justifications, offender references, staff ids), the
log and directory keys and the NATS logins: no other local user may read any of it.
New files are private from birth (`private_umask` around creation); a home made by an
older version, or loosened by hand, is tightened on every start (`lock_down`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700

__all__ = ["DIR_MODE", "FILE_MODE", "lock_down", "private_umask"]


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created inside are the owner's alone; the umask is restored."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def lock_down(root: Path) -> None:
    """`root` and everything under it: directories 0700, files 0600 (links untouched)."""
    if not root.is_dir():
        return
    _chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            _chmod(Path(folder, name), DIR_MODE)
        for name in files:
            _chmod(Path(folder, name), FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # a file that went away meanwhile
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
            path.chmod(mode)
