"""Another local user can read nothing of the deployment home: the audit database (and its
-wal/-shm), keys and logins are 0600, directories 0700, also when the process umask is
permissive and when an older home was left readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from audit import AuditStore
from broker.home import Home
from tests.auditlog import record


@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)  # the common default: files 0644, directories 0755
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _loose(root: Path) -> list[str]:
    """Every path under `root` (itself included) that is not owner-only."""
    found = [] if _mode(root) == 0o700 else [f"{root} {_mode(root):o}"]
    for path in root.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        if not path.is_symlink() and _mode(path) != want:
            found.append(f"{path.relative_to(root)} {_mode(path):o}")
    return found


def test_a_new_home_is_owner_only(tmp_path, loose_umask):
    """`s284 up`'s first start writes keys, logins and config readable by the owner alone."""
    home = Home(tmp_path / "home")
    assert home.init(4222)
    assert _loose(home.path) == []
    agency = home.agency_home("police").path
    assert _loose(agency) == []


def test_an_existing_loose_home_is_tightened(tmp_path, loose_umask):
    """A home an older version (or a careless chmod) left readable is fixed on start."""
    home = Home(tmp_path / "home")
    home.init(4222)
    home.path.chmod(0o755)
    home.directory_key_path.chmod(0o644)
    home.directory_key_path.parent.chmod(0o755)
    assert not home.init(4222)
    assert _loose(home.path) == []


def test_the_audit_database_and_its_wal_are_owner_only(tmp_path, loose_umask):
    """audit.db, audit.db-wal and audit.db-shm are 0600, new or left 0644 by an older run."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(f"sqlite:///{db}")
    store.append([record(0)])
    modes = {p.name: _mode(p) for p in tmp_path.glob("audit.db*")}
    assert modes == {"audit.db": 0o600, "audit.db-wal": 0o600, "audit.db-shm": 0o600}
    store.close()
    db.chmod(0o644)
    AuditStore.open(f"sqlite:///{db}").close()
    assert _mode(db) == 0o600
