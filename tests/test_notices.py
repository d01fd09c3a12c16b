"""The Post Sentence Authority's notices, information requests and their answers through
the running gateway: delivered, registered, answered; bad ones refused with a reason code
the sender receives, and recorded. (Gateway logic on the in-memory twin of NATS;
tests/test_notices_nats.py holds the Authority's NATS permissions on a real server.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit import AuditStore
from broker.sdk import AgencyClient
from broker.wire.envelope import Sender
from routing import RoutingStore

LAW = "Serious Offenders Act 2018 (Vic) s 283"
OFFICER = Sender(agency="psa", unit="oversight", person_id="psa-1", role="authority_officer")
SOCT = Sender(agency="dffh", unit="soct", person_id="soct-2", role="soct_coordinator")
CASE = "case_manager"


def _later(days: int = 14) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _register(dep: object) -> RoutingStore:
    return RoutingStore.open(dep.settings.database_url)  # type: ignore[attr-defined]


async def _notice(dep: object, respond_by: object, to: list[str] | None = None) -> object:
    async with await dep.client("psa", OFFICER) as psa:  # type: ignore[attr-defined]
        return await psa.send(
            kind="psa.notice",
            purpose="authorised_by_law",
            offender="S284-000700",
            to=to or ["corrections"],
            payload={"subject": "CSP evidence for the March MAP", "respond_by": respond_by},
            law_reference=LAW,
        )


def _sender(agency: str) -> Sender:
    return Sender(agency=agency, unit="north", person_id=f"{agency}-7", role=CASE)


async def _answer(dep: object, agency: str, request_id: str, to: list[str]) -> object:
    async with await dep.client(agency, _sender(agency)) as client:  # type: ignore[attr-defined]
        return await client.send(
            kind="info.response",
            purpose="authorised_by_law",
            offender="S284-000700",
            to=to,
            payload={"answer": "synthetic"},
            law_reference=LAW,
            in_reply_to=request_id,
        )


def _refusal(dep: object, message_id: str) -> str:
    store = AuditStore.open(dep.settings.database_url)  # type: ignore[attr-defined]
    [record] = [r for r in store.records(message_id) if r["event"] == "refused"]
    return str(record["reason_code"])


async def test_notice_is_delivered_registered_and_answered(twin_deployment, twin_gateway):
    """The Authority's notice reaches Corrections and enters the register as open; Corrections
    answers it to the Authority, who receives the answer; the register marks it answered."""
    receipt = await _notice(twin_deployment, _later())
    assert receipt.accepted, receipt
    async with await twin_deployment.client("corrections") as corrections:
        [notice] = [d async for d in corrections.inbox()]
    assert notice.envelope.kind == "psa.notice"
    assert notice.payload["subject"] == "CSP evidence for the March MAP"
    [row] = _register(twin_deployment).requests.rows()
    assert (row.request_id, row.recipient) == (receipt.message_id, "corrections")
    assert row.from_agency == "psa"
    assert row.answered_at is None

    answer = await _answer(twin_deployment, "corrections", receipt.message_id, ["psa"])
    assert answer.accepted, answer
    async with await twin_deployment.client("psa") as psa:
        [got] = [d async for d in psa.inbox()]
    assert got.envelope.in_reply_to == receipt.message_id
    assert (got.payload, got.withheld) == ({"answer": "synthetic"}, [])
    [row] = _register(twin_deployment).requests.rows()
    assert row.response_id == answer.message_id
    assert row.late_by == timedelta(0)


async def test_soct_request_to_health_on_csp_preparation(twin_deployment, twin_gateway):
    """SOCT (a DFFH team) asks Health for an update ahead of a MAP meeting; Health answers."""
    async with await twin_deployment.client("dffh", SOCT) as soct:
        receipt = await soct.send(
            kind="info.request",
            purpose="csp_preparation",
            offender="S284-000701",
            order_status="supervision_order",
            to=["health"],
            payload={"questions": ["attendance since the last MAP"], "respond_by": "2099-01-31"},
        )
    assert receipt.accepted, receipt
    async with await twin_deployment.client("health", _sender("health")) as health:
        answer = await health.send(
            kind="info.response",
            purpose="csp_preparation",
            offender="S284-000701",
            order_status="supervision_order",
            to=["dffh"],
            payload={"answer": "synthetic"},
            in_reply_to=receipt.message_id,
        )
    assert answer.accepted, answer
    [row] = _register(twin_deployment).requests.rows(purpose="csp_preparation")
    assert row.from_unit == "soct"
    assert row.respond_by == datetime(2099, 1, 31, 13, 0, tzinfo=UTC)  # end of day, Melbourne
    assert row.answered_at is not None


async def test_bad_deadlines_are_refused_and_recorded(twin_deployment, twin_gateway):
    """A respond_by in the past, unreadable, without a zone or missing: request.bad_deadline
    on the sender's receipt and in the log; nothing registered."""
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for bad in (past, "next Tuesday", "2099-01-31T10:00:00", None):
        receipt = await _notice(twin_deployment, bad)
        assert (receipt.status, receipt.reason) == ("refused", "request.bad_deadline"), bad
        assert "respond_by" in (receipt.detail or "")
        assert _refusal(twin_deployment, receipt.message_id) == "request.bad_deadline"
    assert _register(twin_deployment).requests.rows() == []


async def test_answers_to_unknown_requests_or_by_the_wrong_party_are_refused(
    twin_deployment, twin_gateway
):
    """An answer naming no request, an answer by an agency the notice did not go to, and an
    answer to someone other than the requester: each refused, the register unchanged."""
    notice = await _notice(twin_deployment, _later())
    assert notice.accepted
    unknown = await _answer(twin_deployment, "corrections", "01M8PJ7Z4VRHG3588DZ723VBAD", ["psa"])
    assert unknown.reason == "request.unknown"
    stranger = await _answer(twin_deployment, "police", notice.message_id, ["psa"])
    assert stranger.reason == "request.wrong_party"
    elsewhere = await _answer(twin_deployment, "corrections", notice.message_id, ["police"])
    assert elsewhere.reason == "request.wrong_party"
    for receipt in (unknown, stranger, elsewhere):
        assert receipt.status == "refused"
        assert _refusal(twin_deployment, receipt.message_id) == receipt.reason
    [row] = _register(twin_deployment).requests.rows()
    assert row.answered_at is None


async def test_parties_that_may_not_send_or_receive_notices_are_refused(
    twin_deployment, twin_gateway
):
    """A notice addressed to the Authority itself, a notice from an agency, and a risk update
    to the Authority: policy.denied, naming the rule."""
    to_psa = await _notice(twin_deployment, _later(), to=["psa"])
    assert to_psa.reason == "policy.denied"
    assert "receives only answers" in (to_psa.detail or "")
    async with await twin_deployment.client("corrections", _sender("corrections")) as agency:
        forged = await agency.send(
            kind="psa.notice",
            purpose="authorised_by_law",
            offender="S284-000702",
            to=["police"],
            payload={"respond_by": _later()},
            law_reference=LAW,
        )
        update = await agency.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000702",
            to=["psa"],
            payload={"summary": "synthetic"},
        )
    assert forged.reason == "policy.denied"
    assert "only the Post Sentence Authority" in (forged.detail or "")
    assert update.reason == "policy.denied"
    assert "receives only answers" in (update.detail or "")
    for receipt in (to_psa, forged, update):
        assert _refusal(twin_deployment, receipt.message_id) == "policy.denied"


async def test_the_authority_is_never_pushed_later_updates(twin_deployment, twin_gateway):
    """After the Authority receives an answer about an offender, a later risk update about
    them reaches the agencies following the offender, never the Authority."""
    notice = await _notice(twin_deployment, _later())
    assert (await _answer(twin_deployment, "corrections", notice.message_id, ["psa"])).accepted
    async with await twin_deployment.client("corrections", _sender("corrections")) as agency:
        update = await agency.send(
            kind="risk.update",
            purpose="offender_management",
            offender="S284-000700",
            to=["police"],
            payload={"summary": "synthetic"},
        )
    assert update.accepted
    assert [d.recipient for d in update.deliveries] == ["police"]
    async with await twin_deployment.client("psa") as psa:
        kinds = [d.envelope.kind async for d in psa.inbox()]
    assert kinds == ["info.response"]


@pytest.mark.nats
async def test_a_notice_and_its_answer_over_a_real_nats_server(deployment, gateway):
    """On nats-server with the accounts' permissions: the Authority, from its own home and
    NATS login, sends a notice; Corrections answers it; the Authority reads the answer."""
    async with await AgencyClient.from_home(deployment.home.path, "psa", OFFICER) as psa:
        notice = await psa.send(
            kind="psa.notice",
            purpose="authorised_by_law",
            offender="S284-000703",
            to=["corrections"],
            payload={"subject": "plan evidence", "respond_by": _later()},
            law_reference=LAW,
        )
    assert notice.accepted, notice
    home = deployment.home.path
    async with await AgencyClient.from_home(home, "corrections", _sender("corrections")) as c:
        answer = await c.send(
            kind="info.response",
            purpose="authorised_by_law",
            offender="S284-000703",
            to=["psa"],
            payload={"answer": "synthetic"},
            law_reference=LAW,
            in_reply_to=notice.message_id,
        )
    assert answer.accepted, answer
    async with await AgencyClient.from_home(home, "psa") as psa:
        [got] = [d async for d in psa.inbox()]
    assert (got.envelope.kind, got.envelope.in_reply_to) == ("info.response", notice.message_id)
