"""Long benchmarks say what they will do, how long it takes and (the log benchmark) how
much disk, before they start; on stderr, so the figures on stdout stay clean."""

from __future__ import annotations

from bench.progress import duration, plan_audit, plan_pipeline


def test_bench_audit_warns_of_minutes_and_gibibytes(capsys):
    """`s284 bench audit` (a million records) first says it takes minutes and ~2 GiB."""
    plan_audit(1_000_000, sqlite=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "min" in err
    assert "2.0 GiB" in err


def test_bench_pipeline_says_what_it_will_do(capsys):
    """`s284 bench` names its messages and a rough duration before the first phase."""
    plan_pipeline(5000, 500)
    out, err = capsys.readouterr()
    assert out == ""
    assert "5,000 messages" in err
    assert "about" in err


def test_durations_read_as_a_person_would_say_them():
    """Seconds under a minute and a half, minutes beyond."""
    assert duration(38) == "about 40 s"
    assert duration(250) == "about 4 min"
