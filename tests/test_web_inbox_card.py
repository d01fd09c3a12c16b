"""The alert card in the web inbox says what the alert is (its `alert_level` and `summary`,
shown to the designated contact it is addressed to), escaped, and fits a phone.

The app is the inbox's own (tests/test_api_alerts.py's store and recording actions) with a
gist source standing in for whatever opens the alert in production; the browser test drives
Debian's chromium at 1280 and 390 px and keeps its screenshots in the test's tmp_path.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import httpx
import pytest

from broker.errors import CryptoError
from broker.http.app import ApiDeps, create_app
from broker.http.contacts import AlertGist
from broker.http.gists import SealedAlertGists
from broker.ids import new_id
from routing import Alert, Route, Topic
from tests.browser import browser_page, login  # noqa: F401 - the fixture is used by name
from tests.test_api_alerts import NOW, add_alert, make_env
from tests.test_web_inbox import serving
from tests.test_wire_example import EXAMPLE, _directory, _identity

LONG = "S284-" + "9" * 60  # an offender reference with no place to break
SUMMARY = "Seen at the address he is barred from; " + "x" * 120 + " (synthetic)."


@pytest.fixture
def env(tmp_path):
    """The inbox app with a gist source: alert id -> payload, a CryptoError for "broken"."""
    e = make_env(tmp_path)
    payloads: dict[str, dict[str, object]] = {}

    def gist(alert: Alert) -> AlertGist | None:
        if payloads.get(alert.alert_id) == {"broken": True}:
            raise CryptoError("cannot open")
        found = payloads.get(alert.alert_id)
        return AlertGist.of(found) if found is not None else None

    deps = ApiDeps(e.audit, e.config, e.store, e.actions, alert_gist=gist)
    e = dataclasses.replace(e, app=create_app({}, deps))
    e.payloads = payloads
    yield e
    e.store.close()
    e.audit.close()


@pytest.fixture
async def client(env):
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/inbox/login", data={"token": env.token("pol-nwm-017")})
        assert r.status_code == 303
        yield c


def _card(page: str, alert: Alert) -> str:
    start = page.index(f'id="alert-{alert.alert_id}"')
    return page[start : page.index("</article>", start)]


async def test_the_card_shows_the_alert_level_and_summary(env, client):
    """The contact reads on the card how urgent the alert is and what happened."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    env.payloads[alert.alert_id] = {"alert_level": "high", "summary": "Breach of curfew"}
    card = _card((await client.get("/inbox")).text, alert)
    assert '<span class="level">high</span> risk alert' in card
    assert '<p class="summary">Breach of curfew</p>' in card
    assert '<dd class="alert-level">high</dd>' in card


async def test_a_script_in_the_summary_or_level_is_shown_as_text(env, client):
    """Whatever an agency system put in the payload is text on the page, never markup."""
    alert = add_alert(env.store, "police", "pol-nwm-017")
    env.payloads[alert.alert_id] = {
        "alert_level": "<b>high</b>",
        "summary": "<script>alert(1)</script> & <img src=x onerror=alert(2)>",
    }
    page = (await client.get("/inbox")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;b&gt;high&lt;/b&gt;" in page
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>" not in page


async def test_an_alert_this_process_cannot_read_says_where_to_read_it(env, client):
    """No gist (or one that fails to open) leaves the other cards intact and says to open
    the alert in the agency's own system; a payload without a summary says so."""
    unknown = add_alert(env.store, "police", "pol-nwm-017")
    broken = add_alert(env.store, "police", "pol-nwm-017")
    bare = add_alert(env.store, "police", "pol-nwm-017")
    fine = add_alert(env.store, "police", "pol-nwm-017")
    env.payloads[broken.alert_id] = {"broken": True}
    env.payloads[bare.alert_id] = {"risk": 3}
    env.payloads[fine.alert_id] = {"alert_level": "medium", "summary": "Moved address"}
    r = await client.get("/inbox")
    assert r.status_code == 200
    for alert in (unknown, broken):
        assert "open it in your agency's system" in _card(r.text, alert)
        assert "Alert level" not in _card(r.text, alert)
    assert "The alert gives no summary." in _card(r.text, bare)
    assert '<dd class="alert-level">not given</dd>' in _card(r.text, bare)
    assert "Moved address" in _card(r.text, fine)


def test_a_sealed_alert_opens_only_with_the_addressed_agencys_own_key(env, tmp_path):
    """Given police's own identity, the source reads the documented delivery's level and
    summary as police's SDK would; without any police key (the broker's own process) it has
    nothing to show; with a wrong key it refuses, and the card then says where to read it."""
    route = Route("police", "north-west-metro", Topic.RISK, "pol-nwm-017", None, None, duty=False)
    frame = EXAMPLE["delivery"]["frame"].encode("ascii")
    alert = env.store.open_alert(
        new_id(), new_id(), route, "S284-000123", Topic.RISK, "corrections",
        "offender_management", NOW, frame,
    )  # fmt: skip
    police, corrections = _identity("police", tmp_path), _identity("corrections", tmp_path)
    gist = SealedAlertGists(env.store, {"police": [corrections, police]}, _directory)(alert)
    assert gist == AlertGist.of(EXAMPLE["delivery"]["content"]["payload"])
    assert gist.alert_level == "elevated"
    assert gist.summary.startswith("SYNTHETIC EXAMPLE. Missed two")
    assert SealedAlertGists(env.store, {}, _directory)(alert) is None
    with pytest.raises(CryptoError):
        SealedAlertGists(env.store, {"police": [corrections]}, _directory)(alert)


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_the_card_fits_the_screen_at_desktop_and_phone_width(
    env,
    browser_page,  # noqa: F811 - the fixture imported above
    tmp_path,
    width,
):
    """At 1280 and at 390 px wide (a phone) the page never scrolls sideways, even with a
    long unbroken offender reference and summary; the level, the summary, the alert id and
    the reply box are all on screen. Screenshots: inbox-<width>.png in tmp_path."""
    from playwright.sync_api import expect

    alert = add_alert(env.store, "police", "pol-nwm-017", offender=LONG, topic=Topic.HOUSING)
    add_alert(env.store, "police", "pol-nwm-017", due_in=timedelta(minutes=-5))
    env.payloads[alert.alert_id] = {"alert_level": "high", "summary": SUMMARY}
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    with serving(env) as base:
        login(page, base, env.token("pol-nwm-017"))
        card = page.locator(f'[id="alert-{alert.alert_id}"]')
        expect(card.locator(".level")).to_have_text("high")
        expect(card.locator(".summary")).to_have_text(SUMMARY)
        expect(card.get_by_label("Reply to the managing officer")).to_be_visible()
        page.screenshot(path=tmp_path / f"inbox-{width}.png", full_page=True)
        overflow = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        widest = page.evaluate(
            """() => Math.max(...[...document.querySelectorAll('article *')]
                   .map(e => e.getBoundingClientRect().right))"""
        )
    assert overflow[0] <= overflow[1], overflow
    assert widest <= width, widest
    assert (tmp_path / f"inbox-{width}.png").stat().st_size > 1000
