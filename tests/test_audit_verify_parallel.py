"""Step 2 of verify in worker processes (`audit._verify_parallel`) gives the serial
verifier's verdict, message and position for every record it could find wrong: ranges
of three records, so a tampered record sits at each range's start, middle and end."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditStore, checkpoint, parse_verifier_key, verifier_key, verify_log
from audit import _verify_parallel as parallel
from tests.auditlog import record, untrigger

ORIGIN = "s284-broker.test/audit/log"
KEY = Ed25519PrivateKey.generate()
VERIFIER = parse_verifier_key(verifier_key(ORIGIN, KEY.public_key()))
SIZE = 11


@pytest.fixture
def log(store_url, monkeypatch):
    """Eleven records, signed at 5 and 11; ranges of three."""
    monkeypatch.setattr(parallel, "SPAN", 3)
    store = AuditStore.open(store_url)
    store.append([record(i) for i in range(5)])
    checkpoint(store, ORIGIN, KEY)
    store.append([record(i) for i in range(5, SIZE)])
    checkpoint(store, ORIGIN, KEY)
    yield store, store_url
    store.close()


def _both(store):
    serial = verify_log(store, VERIFIER, workers=0)
    two = verify_log(store, VERIFIER, workers=2)
    fields = ("problem", "records", "root", "checked_sizes")
    assert [getattr(two, f) for f in fields] == [getattr(serial, f) for f in fields]
    return two


def _sql(url, statement):
    """As an insider with the database would: triggers dropped first."""
    engine = untrigger(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def test_a_clean_log_verifies_in_ranges(log):
    store, _ = log
    assert parallel.checked_ranges(store, 2) is not None  # the path under test is taken
    report = _both(store)
    assert report.ok
    assert (report.records, report.checked_sizes) == (SIZE, [5, SIZE])


def test_the_automatic_choice_is_serial_for_a_small_log(log):
    store, _ = log
    assert parallel.checked_ranges(store, None) is None


def test_an_in_memory_log_is_verified_serially():
    store = AuditStore.open("sqlite://")
    assert parallel.checked_ranges(store, 2) is None
    store.close()


@pytest.mark.parametrize("seq", range(SIZE))
def test_a_deleted_record_anywhere(log, seq):
    store, url = log
    _sql(url, f"DELETE FROM audit_log WHERE seq = {seq}")  # noqa: S608
    problem = _both(store).problem
    assert problem is not None
    assert problem.seq == seq


@pytest.mark.parametrize("seq", range(SIZE))
def test_an_altered_record_anywhere(log, seq):
    store, url = log
    _sql(url, f"UPDATE audit_log SET canonical = canonical || ' ' WHERE seq = {seq}")  # noqa: S608
    problem = _both(store).problem
    assert problem is not None
    assert (problem.code, problem.seq) == ("record.altered", seq)


@pytest.mark.parametrize("seq", [2, 3, 4])
def test_an_erased_personal_row_without_expiry(log, seq):
    store, url = log
    _sql(url, f"DELETE FROM audit_personal WHERE seq = {seq}")  # noqa: S608
    problem = _both(store).problem
    assert problem is not None
    assert (problem.code, problem.seq) == ("personal.erased_without_expiry", seq)


def test_the_first_of_two_problems_is_the_one_reported(log):
    """A problem in an early range wins over one a faster worker found later."""
    store, url = log
    _sql(url, "UPDATE audit_log SET canonical = canonical || ' ' WHERE seq = 9")
    _sql(url, "DELETE FROM audit_log WHERE seq = 1")
    problem = _both(store).problem
    assert problem is not None
    assert (problem.code, problem.seq) == ("record.missing", 1)


def test_a_lost_worker_process_means_verifying_again_in_one_process(log, monkeypatch):
    """A worker killed (for memory, say) is no verdict on the log: the serial report."""
    store, _url = log
    serial = verify_log(store, VERIFIER, workers=0)

    def lost(*_args, **_kwargs):
        raise BrokenProcessPool("a worker process died")
        yield  # a generator, like the real one

    monkeypatch.setattr(parallel, "_ranges", lost)
    again = verify_log(store, VERIFIER, workers=2)
    assert again.ok
    assert serial.ok
    assert (again.records, again.root) == (serial.records, serial.root) == (SIZE, serial.root)
