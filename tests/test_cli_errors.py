"""The CLI's one error boundary, as a newcomer meets it: bad input gives one line on stderr
that says what is wrong and what to do, the documented exit code, and never a traceback."""

from __future__ import annotations

import json

import pytest

from broker.cli.errors import describe
from broker.home import Home
from tests.conftest import free_port, s284

SEND = ["send", "--as", "corrections", "--kind", "risk.update", "--purpose",
        "offender_management", "--to", "police"]  # fmt: skip


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "update.json"
    good.write_text(json.dumps({"risk_level": "high"}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{nope")
    return tmp_path


def _bad_inputs(tmp):
    nowhere = str(tmp / "no-such-home")
    return [
        # (argv, expected exit code, words the one line must contain)
        ([*SEND, "--offender", "S284-000123", "--payload", str(tmp / "nope.json")], 2,
         "cannot read"),
        ([*SEND, "--offender", "S284-000123", "--payload", str(tmp)], 2, "cannot read"),
        ([*SEND, "--offender", "S284-000123", "--payload", str(tmp / "broken.json")], 2,
         "not JSON"),
        ([*SEND, "--offender", "S284-000123", "--payload", str(tmp / "list.json")], 2,
         "JSON object"),
        ([*SEND, "--offender", "Jane Smith", "--payload", str(tmp / "update.json")], 2,
         "not an offender reference"),
        ([*SEND, "--offender", "S284-000123", "--payload", str(tmp / "update.json"),
          "--home", nowhere], 1, "s284 up"),
        (["inbox", "--as", "police", "--home", nowhere], 1, "s284 up"),
        (["token", "--role", "auditor", "--subject", "A. Auditor", "--home", nowhere], 1,
         "no s284 deployment"),
        (["audit", "verify", "--home", nowhere], 1, "no s284 deployment"),
        (["routing", "import", str(tmp / "nope.yaml"), "--as", "ops-1"], 2, "does not exist"),
        (["policy", "explain", str(tmp / "broken.json")], 2, "not JSON"),
        (["send", "--as", "nobody"], 2, "Invalid value"),
        (["demo", "--bogus"], 2, "No such option"),
        (["adapter", "police", "--config", str(tmp / "nope.yaml")], 2, "does not exist"),
    ]  # fmt: skip


def test_bad_input_never_shows_a_traceback(files):
    """Each bad command line: the documented exit code, one line naming the problem."""
    for argv, code, words in _bad_inputs(files):
        done = s284(*argv)
        assert "Traceback" not in done.stderr + done.stdout, argv
        assert done.returncode == code, (argv, done.returncode, done.stderr)
        assert words in done.stderr, (argv, done.stderr)


def test_a_flag_that_disagrees_with_the_home_is_an_error(tmp_path):
    """`s284 up --nats-port` on a home made with another port says so and how to fix it,
    instead of silently using the old port."""
    home = Home(tmp_path / "home")
    made_with = free_port()
    home.init(made_with)
    other = made_with + 1 if made_with < 65535 else made_with - 1
    done = s284("up", "--home", str(home.path), "--nats-port", str(other))
    assert done.returncode == 1
    assert f"created with NATS port {made_with}" in done.stderr
    assert "--home NEW_DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unexpected_error_is_one_line_not_a_traceback():
    """A bug that escapes every command still reaches the user as one line and exit 1."""
    code, line = describe(ZeroDivisionError("division by zero"))
    assert code == 1
    assert line.startswith("internal error (ZeroDivisionError)")
    assert "\n" not in line
    assert "--log-level DEBUG" in line
