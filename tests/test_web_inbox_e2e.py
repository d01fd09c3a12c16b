"""The web inbox end to end, as the scheme runs it: `s284 up`, the routing table imported
with the CLI, Corrections placing an offender and raising an alert, the designated contact
acknowledging it in a real browser, and the managing officer receiving the acknowledgement."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser import browser_page, login  # noqa: F401 - the fixture is used by name
from tests.conftest import s284

pytestmark = [pytest.mark.nats, pytest.mark.browser, pytest.mark.slow]

TABLE = Path(__file__).parent.parent / "docs" / "examples" / "routing-table.yaml"


def _send(home, tmp_path, *args, payload):
    body = tmp_path / "payload.json"
    body.write_text(json.dumps(payload))
    result = s284(
        "send", "--home", str(home), "--as", "corrections", "--offender", "S284-000920",
        "--to", "police", "--purpose", "offender_management", "--person", "cm-0042",
        "--payload", str(body), *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_contact_acknowledges_in_the_browser_and_the_managing_officer_is_told(
    running,
    tmp_path,
    browser_page,  # noqa: F811 - the fixture imported above
):
    """The alert appears in the contact's inbox with its offender reference, level and
    summary (opened with police's own keys from its agency home); after
    Acknowledge it is gone, and `s284 inbox --notices` at Corrections shows who
    acknowledged it."""
    from playwright.sync_api import expect

    home, _, http = running
    imported = s284("routing", "import", str(TABLE), "--home", str(home), "--as", "ops-0001")
    assert imported.returncode == 0, imported.stderr
    _send(
        home, tmp_path, "--kind", "order.status", "--order-status", "supervision_order",
        payload={"area": "north-west-metro", "managing_officer": "cm-0042"},
    )  # fmt: skip
    receipt = _send(
        home, tmp_path, "--kind", "risk.alert", "--topic", "risk",
        payload={"alert_level": "high", "summary": "synthetic"},
    )  # fmt: skip
    [delivery] = receipt["deliveries"]
    assert delivery["contact"] == "pol-nwm-017"
    token = s284(
        "token", "--home", str(home), "--role", "contact", "--agency", "police",
        "--subject", "pol-nwm-017",
    ).stdout.splitlines()[-1]  # fmt: skip

    page = browser_page
    base = f"http://127.0.0.1:{http}"
    login(page, base, token)
    card_selector = f'[id="alert-{delivery["delivery_id"]}"]'  # the id holds a "."
    card = page.locator(card_selector)
    expect(card).to_contain_text("S284-000920")
    # embedded: police's home sits beside the broker's, so the card says what the alert says
    expect(card.locator(".alert-level")).to_have_text("high")
    expect(card.locator(".summary")).to_contain_text("synthetic")
    card.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Alert acknowledged")
    expect(page.locator(card_selector)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/inbox"))

    notices = s284("inbox", "--home", str(home), "--as", "corrections", "--notices", "--json")
    assert notices.returncode == 0, notices.stderr
    [notice] = [json.loads(line) for line in notices.stdout.splitlines()]
    assert (notice["event"], notice["contact"], notice["alert_id"]) == (
        "acknowledged",
        "pol-nwm-017",
        delivery["delivery_id"],
    )
