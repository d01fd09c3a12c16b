"""The designated contacts' alerts API (/api/v1/alerts): who may call it, whose alerts each
contact sees, acknowledging and replying, and the error shapes a client codes against.

Web-layer tests: a real RoutingStore on SQLite and `RecordingActions` standing in for the
broker's alert flow (broker/alerting.py), driven through httpx's ASGI transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from fastapi import FastAPI
from structlog.testing import capture_logs

from audit import AuditStore
from broker.alerts.flow import AlertContext, AlertFlow
from broker.auth import AuthConfig, LocalIssuer, Principal, Role
from broker.errors import NotYourAlertError, ReasonCode, Refusal
from broker.http.app import ApiDeps, create_app
from broker.ids import new_id
from routing import Alert, Route, RoutingStore, RoutingUnavailableError, Topic

BASE = "/api/v1/alerts"
TABLE = Path(__file__).parent.parent / "docs" / "examples" / "routing-table.yaml"
OFFENDER = "S284-000123"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class RecordingActions:
    """AlertActions for web-layer tests: acknowledges in the store, records replies, and
    refuses replies when told to (as the s 284 policy would)."""

    store: RoutingStore
    replies: list[tuple[str, str, str]] = field(default_factory=list)
    refuse: bool = False
    moved_away: bool = False  # escalated between the API's check and the flow's own

    async def acknowledge(self, alert_id: str, contact: Principal) -> Alert:
        if self.moved_away:
            raise NotYourAlertError(alert_id, contact.subject)
        return self.store.acknowledge(alert_id, contact.subject, datetime.now(UTC))

    async def reply(self, alert_id: str, contact: Principal, text: str) -> str:
        if self.refuse:
            raise Refusal(ReasonCode.POLICY_DENIED, "no permit policy matched")
        self.replies.append((alert_id, contact.subject, text))
        return new_id()


def open_store(tmp_path: Path) -> RoutingStore:
    """A routing store with the example table imported (when the repository has it)."""
    store = RoutingStore.open(f"sqlite:///{tmp_path / 'routing.db'}")
    if TABLE.exists():
        store.import_table(yaml.safe_load(TABLE.read_text()), actor="test")
    store.set_offender(OFFENDER, "co-mo-001", "corrections", "north-west-metro", "active", NOW)
    return store


def add_alert(
    store: RoutingStore,
    agency: str,
    contact: str,
    *,
    offender: str = OFFENDER,
    topic: Topic = Topic.RISK,
    age: timedelta = timedelta(minutes=5),
    due_in: timedelta | None = timedelta(hours=2),
) -> Alert:
    """An alert routed to (agency, contact), created `age` ago, due `due_in` from now."""
    deadline = NOW + due_in if due_in is not None else None
    route = Route(agency, "north-west-metro", topic, contact, None, deadline, duty=False)
    return store.open_alert(
        new_id(), new_id(), route, offender, topic, "corrections",
        "offender_management", NOW - age, b"sealed-frame",
    )  # fmt: skip


def token(issuer: LocalIssuer, config: AuthConfig, subject: str, agency: str | None,
          role: Role = Role.CONTACT) -> str:  # fmt: skip
    return issuer.issue(config, subject, role, agency, 600)


@dataclass
class Env:
    store: RoutingStore
    actions: RecordingActions
    issuer: LocalIssuer
    config: AuthConfig
    app: FastAPI
    audit: AuditStore

    def token(self, subject: str, agency: str | None = "police", role: Role = Role.CONTACT) -> str:
        return token(self.issuer, self.config, subject, agency, role)


def make_env(tmp_path: Path) -> Env:
    issuer = LocalIssuer.for_home(tmp_path / "home")
    issuer.ensure()
    config = AuthConfig("s284-local", "s284-audit", str(issuer.public_path))
    store = open_store(tmp_path)
    actions = RecordingActions(store)
    audit = AuditStore.open(f"sqlite:///{tmp_path / 'audit.db'}")
    app = create_app({}, ApiDeps(audit=audit, auth=config, routing=store, alerts=actions))
    return Env(store, actions, issuer, config, app, audit)


@pytest.fixture
def env(tmp_path):
    e = make_env(tmp_path)
    yield e
    e.store.close()
    e.audit.close()


@pytest.fixture
async def client(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def test_without_a_token_the_api_answers_401_in_the_audit_api_shape(client):
    """No token, a malformed header or a forged token: 401 with {error, detail}."""
    r = await client.get(BASE)
    assert r.status_code == 401
    assert r.json()["error"] == "auth.missing_token"
    assert set(r.json()) == {"error", "detail"}
    assert r.headers["www-authenticate"] == "Bearer"
    r = await client.get(BASE, headers=bearer("not.a.jwt"))
    assert (r.status_code, r.json()["error"]) == (401, "auth.invalid_token")


@pytest.mark.parametrize("role", [Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN])
async def test_other_roles_are_forbidden(env, client, role):
    """Only designated contacts have alerts: every other role gets 403 on every endpoint."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    tok = bearer(env.token("staff-1", "police" if role is Role.PRIVACY_OFFICER else None, role))
    for method, path in (("GET", BASE), ("POST", f"{BASE}/{alert.alert_id}/ack")):
        r = await client.request(method, path, headers=tok)
        assert (r.status_code, r.json()["error"]) == (403, "auth.forbidden")
    assert env.store.alert(alert.alert_id).acknowledged_by is None


async def test_a_contact_sees_only_their_own_open_alerts_newest_first(env, client):
    """Agency and contact id must both match; a duty officer ("duty") sees the duty inbox."""
    older = add_alert(env.store, "police", "pol-nwm-017", age=timedelta(hours=3))
    newer = add_alert(env.store, "police", "pol-nwm-017", topic=Topic.FAMILY_VIOLENCE)
    add_alert(env.store, "police", "pol-nwm-022")
    add_alert(env.store, "dffh", "pol-nwm-017", topic=Topic.HOUSING)
    duty = add_alert(env.store, "police", "duty", due_in=None)

    r = await client.get(BASE, headers=bearer(env.token("pol-nwm-017")))
    assert r.status_code == 200
    assert [a["alert_id"] for a in r.json()["alerts"]] == [newer.alert_id, older.alert_id]
    first = r.json()["alerts"][0]
    assert first["offender"] == OFFENDER
    assert (first["topic"], first["sender_agency"]) == ("family_violence", "corrections")
    assert (first["status"], first["overdue"]) == ("open", False)

    r = await client.get(BASE, headers=bearer(env.token("duty")))
    assert [a["alert_id"] for a in r.json()["alerts"]] == [duty.alert_id]
    r = await client.get(BASE, headers=bearer(env.token("nobody-here")))
    assert r.json() == {"alerts": []}


async def test_an_alert_past_its_deadline_is_marked_overdue(env, client):
    add_alert(env.store, "police", "pol-nwm-017", due_in=timedelta(minutes=-1))
    r = await client.get(BASE, headers=bearer(env.token("pol-nwm-017")))
    assert r.json()["alerts"][0]["overdue"] is True


async def test_acknowledging_closes_the_alert_once(env, client):
    """200 with the acknowledged alert; it leaves the list; a second time is 409."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    tok = bearer(env.token("pol-nwm-017"))
    r = await client.post(f"{BASE}/{alert.alert_id}/ack", headers=tok)
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["acknowledged_by"]) == ("acknowledged", "pol-nwm-017")
    assert body["acknowledged_at"] is not None
    assert (await client.get(BASE, headers=tok)).json() == {"alerts": []}

    r = await client.post(f"{BASE}/{alert.alert_id}/ack", headers=tok)
    assert (r.status_code, r.json()["error"]) == (409, "routing.already_acknowledged")


async def test_someone_elses_or_an_unknown_alert_is_404(env, client):
    """Not routed to you reads exactly like not there: no alert's existence leaks."""
    theirs = add_alert(env.store, "police", "pol-nwm-022")
    other_agency = add_alert(env.store, "dffh", "pol-nwm-017", topic=Topic.HOUSING)
    tok = bearer(env.token("pol-nwm-017"))
    for alert_id in (theirs.alert_id, other_agency.alert_id, new_id()):
        for action, body in (("ack", None), ("reply", {"text": "concern"})):
            r = await client.post(f"{BASE}/{alert_id}/{action}", headers=tok, json=body)
            assert (r.status_code, r.json()["error"]) == (404, "routing.unknown_alert")
    assert env.store.alert(theirs.alert_id).acknowledged_by is None
    assert env.actions.replies == []


async def test_a_reply_goes_to_the_alert_flow_and_returns_its_message_id(env, client):
    alert = add_alert(env.store, "police", "pol-nwm-017")
    r = await client.post(
        f"{BASE}/{alert.alert_id}/reply",
        headers=bearer(env.token("pol-nwm-017")),
        json={"text": "He was seen near the school on Tuesday."},
    )
    assert r.status_code == 201
    assert r.json()["alert_id"] == alert.alert_id
    assert len(r.json()["message_id"]) == 26
    assert env.actions.replies == [
        (alert.alert_id, "pol-nwm-017", "He was seen near the school on Tuesday.")
    ]


@pytest.mark.parametrize(
    "body", [{"text": ""}, {"text": "x" * 2001}, {}, {"text": "ok", "extra": 1}]
)
async def test_a_bad_reply_is_422_and_sends_nothing(env, client, body):
    """Replies carry 1 to 2000 characters of text and nothing else."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    r = await client.post(
        f"{BASE}/{alert.alert_id}/reply", headers=bearer(env.token("pol-nwm-017")), json=body
    )
    assert (r.status_code, r.json()["error"]) == (422, "request.invalid")
    assert env.actions.replies == []


async def test_a_reply_the_policy_refuses_is_422_with_its_reason_code(env, client):
    env.actions.refuse = True
    alert = add_alert(env.store, "police", "pol-nwm-017")
    r = await client.post(
        f"{BASE}/{alert.alert_id}/reply",
        headers=bearer(env.token("pol-nwm-017")),
        json={"text": "concern"},
    )
    assert (r.status_code, r.json()["error"]) == (422, "policy.denied")


async def test_every_request_is_logged_with_ids_and_status_never_the_token(env, client):
    alert = add_alert(env.store, "police", "pol-nwm-017")
    tok = env.token("pol-nwm-017")
    with capture_logs() as logs:
        await client.get(BASE)
        await client.post(
            f"{BASE}/{alert.alert_id}/reply", headers=bearer(tok), json={"text": "secret words"}
        )
    access = [e for e in logs if e["event"] == "alerts.access"]
    assert [(e["subject"], e["status"]) for e in access] == [
        ("anonymous", 401),
        ("pol-nwm-017", 201),
    ]
    assert access[1]["alert_id"] == alert.alert_id
    assert access[1]["route"] == f"{BASE}/{{alert_id}}/reply"
    assert tok not in repr(logs)
    assert "secret words" not in repr(logs)


async def test_an_alert_escalated_away_mid_request_reads_as_not_yours_404(env, client):
    """The alert moved to the deputy between the API's check and the flow's: the contact
    gets the same 404 as for someone else's alert, never a 403 that says it exists."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    env.actions.moved_away = True
    r = await client.post(f"{BASE}/{alert.alert_id}/ack", headers=bearer(env.token("pol-nwm-017")))
    assert (r.status_code, r.json()["error"]) == (404, "routing.unknown_alert")
    assert r.json()["detail"] == "no alert with that id is routed to you"


async def test_the_alert_flow_refuses_someone_elses_alert_with_a_domain_error(env):
    """The broker's alert flow itself (not only the API) refuses to act on an alert routed
    to another contact, naming the alert, with nothing recorded or sent."""
    alert = add_alert(env.store, "police", "pol-nwm-022")
    ctx = AlertContext(env.store, env.audit, None, None, None, None, "test")  # type: ignore[arg-type]
    intruder = Principal("pol-nwm-017", Role.CONTACT, "police")
    with pytest.raises(NotYourAlertError) as caught:
        await AlertFlow(ctx).acknowledge(alert.alert_id, intruder)
    assert (caught.value.alert_id, caught.value.code) == (alert.alert_id, "routing.unknown_alert")
    assert env.store.alert(alert.alert_id).acknowledged_by is None
    assert env.audit.size() == 0


def routing_down(store: RoutingStore, where: Path) -> None:
    """The routing database goes away under a running API: its files are gone and a folder
    stands in their place, so it cannot be opened (or created afresh) either."""
    store.engine.dispose()
    for path in sorted(where.glob("routing.db*")):
        path.unlink()
    (where / "routing.db").mkdir()


async def test_a_routing_database_outage_is_503_routing_unavailable(env, client, tmp_path):
    """With the routing database unreachable, a contact's list answers 503 with the reason
    code routing.unavailable in the usual {error, detail} shape: no traceback, no SQL."""
    routing_down(env.store, tmp_path)
    r = await client.get(BASE, headers=bearer(env.token("pol-nwm-017")))
    assert (r.status_code, r.json()["error"]) == (503, "routing.unavailable")
    assert set(r.json()) == {"error", "detail"}
    assert "sqlite" not in r.text.lower()
    assert "select" not in r.text.lower()


def test_routing_database_errors_reach_callers_as_routing_unavailable(tmp_path):
    """Callers of the routing store (the API, the CLI) see RoutingUnavailableError, never
    the driver's own error, when the database cannot be opened."""
    store = open_store(tmp_path)
    routing_down(store, tmp_path)
    with pytest.raises(RoutingUnavailableError) as caught:
        store.open_alerts("police", "pol-nwm-017")
    store.close()
    assert caught.value.reason == "routing.unavailable"
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
