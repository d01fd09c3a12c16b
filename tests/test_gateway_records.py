"""What the gateway records about a refused message is what it knew at the step that refused
it: a privacy officer sees the ingress agency from step 1, the message id only once it is
authenticated, the envelope's facts only once it is opened, and no envelope facts for a
dead letter. Pure: real keys and steps, no NATS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.errors import ReasonCode, Refusal
from broker.gateway import records, steps
from broker.gateway.stages import Arrived, Authenticated, DeadLettered, Framed, Fresh, Opened
from broker.home import Home
from broker.nats.client import Inbound
from broker.wire.keys import GATEWAY
from tests.frames import craft

DENIED = Refusal(ReasonCode.POLICY_DENIED, "disclosure to police: not permitted")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("home"))
    home.init(4999)  # no server is started: only the keys are used
    return home


def _inbound(frame: bytes, subject: str = "s284.ingress.corrections", header: str = "") -> Inbound:
    headers = {"Nats-Msg-Id": header} if header else {}
    now = datetime.now(UTC)
    return Inbound(frame, subject, headers, 41, 1, now, _controls=None)  # type: ignore[arg-type]


def _opened(home: Home) -> Opened:
    _, frame = craft(home.identity("corrections"), home.directory())
    msg = _inbound(frame)
    framed = steps.check_frame(steps.ingress_agency(msg.subject), frame, 1 << 20)
    claims = steps.authenticate(framed, home.directory())
    content = steps.open_payload(claims, home.identity(GATEWAY))
    return Opened(msg, framed.agency, claims, content)


def test_a_frame_refused_at_step_1_is_recorded_under_its_subjects_agency(home):
    """No id is trusted yet: the record has none; the receipt goes to the claimed id."""
    claimed = "01JBXR3T2E5EED00A10012345P"
    msg = _inbound(b"not a frame", header=claimed)
    out = records.refused(Arrived(msg), Refusal(ReasonCode.FRAME_MALFORMED, "no"), "n1", "v1")
    assert (out.record.ingress_agency, out.record.message_id) == ("corrections", None)
    assert (out.record.reason_code, out.record.ingress_seq) == ("frame.malformed", 41)
    assert (out.message_ref, out.seen) == (claimed, None)
    assert out.record.dedupe_key == f"refused:41:{msg.stored_at.timestamp():.6f}"


def test_a_subject_naming_no_agency_is_recorded_as_unknown(home):
    """The dead-letter record of a message on a subject the broker does not know."""
    msg = _inbound(b"x", subject="s284.ingress.nobody")
    out = records.refused(Arrived(msg), DENIED, "n1", "v1", dead_letter=True)
    assert (out.agency, out.record.ingress_agency) == (None, "unknown")
    assert isinstance(out, DeadLettered)


def test_an_authenticated_refusal_marks_the_id_used_unless_it_is_a_replay(home):
    """A refusal after step 2 records the id and its payload digest; a replay refusal does
    not mark the id as used (the original may still arrive)."""
    opened = _opened(home)
    auth = Authenticated(opened.msg, opened.agency, opened.claims)
    out = records.refused(Fresh(auth.msg, auth.agency, auth.claims), DENIED, "n1", "v1")
    assert out.record.message_id == opened.claims.id
    assert out.record.payload_digest is not None
    assert out.record.offender is None  # not opened yet
    assert out.seen is not None
    assert (out.seen.message_id, out.seen.ingress_seq) == (opened.claims.id, 41)
    replay = Refusal(ReasonCode.REPLAY_DUPLICATE_ID, "seen")
    assert records.refused(auth, replay, "n1", "v1").seen is None


def test_a_policy_refusal_records_the_envelopes_facts_and_a_dead_letter_does_not(home):
    """Step 5 refused: who sent what about whom, for which purpose. A dead letter: only the id."""
    opened = _opened(home)
    out = records.refused(opened, DENIED, "n1", "v1")
    assert not isinstance(out, DeadLettered)
    env = opened.content.envelope
    assert (out.record.sender_agency, out.record.offender) == ("corrections", env.offender)
    assert (out.record.kind, out.record.purpose) == (env.kind.value, env.purpose.value)
    assert (out.record.decision, out.record.reason) == ("deny", DENIED.detail)
    dead = records.refused(opened, DENIED, "n1", "v1", dead_letter=True)
    assert (dead.record.offender, dead.record.kind) == (None, None)
    assert dead.record.message_id == opened.claims.id


def test_framed_refusals_name_the_agency_of_the_frame(home):
    """Step 2 refused (bad signature): agency known, id not trusted, nothing marked used."""
    _, frame = craft(home.identity("corrections"), home.directory())
    msg = _inbound(frame)
    framed = Framed(msg, steps.check_frame(steps.ingress_agency(msg.subject), frame, 1 << 20))
    out = records.refused(framed, Refusal(ReasonCode.AUTH_BAD_SIGNATURE, "no"), "n1", "v2")
    assert (out.record.ingress_agency, out.record.message_id, out.seen) == (
        "corrections",
        None,
        None,
    )
    assert out.policy_version == "v2"
