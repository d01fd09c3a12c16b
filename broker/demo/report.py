"""What the demo saw and whether each expectation held: the report `s284 demo` prints."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.wire.envelope import MAP_AGENCIES, Agency, Receipt

if TYPE_CHECKING:
    from audit import VerifyReport
    from broker.demo.scenario import Step
    from broker.wire.sealing import VerifiedDelivery

ACCEPTED = "accepted"
NO_RECEIPT = "no receipt"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


@dataclass(frozen=True)
class Sent:
    """What was published for a step and the receipt that came back (None: none in time)."""

    step: Step
    message_id: str
    frame: bytes
    receipt: Receipt | None

    @property
    def outcome(self) -> str:
        if self.receipt is None:
            return NO_RECEIPT
        return ACCEPTED if self.receipt.accepted else self.receipt.reason or "refused"

    @property
    def delivered_to(self) -> list[str]:
        return sorted(d.recipient.value for d in self.receipt.deliveries) if self.receipt else []


# -- checking and reporting --------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    name: str
    held: bool


def _step_expectation(sent: Sent) -> Expectation:
    step = sent.step
    held = sent.outcome == step.expect
    if held and step.expect == ACCEPTED:
        held = sent.delivered_to == sorted(a.value for a in step.to)
    want = "accepted and delivered" if step.expect == ACCEPTED else f"refused {step.expect}"
    return Expectation(f"{step.name}: {want}", held)


def _matches(item: VerifiedDelivery, sent: Sent) -> bool:
    """Decrypted, from the expected agency, about the expected offender, nothing invented."""
    env = item.envelope
    return (
        env.sender.agency == sent.step.sender
        and env.offender == sent.step.offender
        and bool(item.payload)
        and item.payload.items() <= sent.step.payload.items()
    )


@dataclass(frozen=True)
class Report:
    sent: list[Sent]
    inboxes: dict[Agency, list[VerifiedDelivery]]
    strict: bool  # a fresh deployment: nothing but the demo's messages may arrive
    elapsed_s: float
    log: VerifyReport | None = None  # `s284 audit verify` of a fresh deployment's log
    routing: tuple[tuple[str, bool], ...] = ()  # the routing scene (broker/demo/routing.py)

    def ours(self, agency: Agency) -> list[VerifiedDelivery]:
        ids = {s.message_id for s in self.sent}
        return [i for i in self.inboxes[agency] if i.envelope.id in ids]

    def expected(self, agency: Agency) -> dict[str, Sent]:
        return {
            s.message_id: s for s in self.sent if s.step.expect == ACCEPTED and agency in s.step.to
        }

    def inbox_expectation(self, agency: Agency) -> Expectation:
        expected, ours = self.expected(agency), self.ours(agency)
        held = (
            sorted(i.envelope.id for i in ours) == sorted(expected)
            and all(_matches(i, expected[i.envelope.id]) for i in ours)
            and (not self.strict or len(ours) == len(self.inboxes[agency]))
        )
        senders = ", ".join(sorted({s.step.sender.value for s in expected.values()}))
        name = (
            f"{agency.value} received exactly {len(expected)} message(s), from {senders}, "
            "verified and decrypted"
            if expected
            else f"{agency.value} received none of the demo's messages"
        )
        return Expectation(name, held)

    @property
    def expectations(self) -> list[Expectation]:
        log = [] if self.log is None else [_log_expectation(self.log)]
        return [
            *(_step_expectation(s) for s in self.sent),
            *(self.inbox_expectation(a) for a in MAP_AGENCIES),
            *(Expectation(name, held) for name, held in self.routing),
            *log,
        ]

    @property
    def ok(self) -> bool:
        return all(e.held for e in self.expectations)


def _log_expectation(log: VerifyReport) -> Expectation:
    return Expectation(
        f"the disclosure log verifies: {log.records} records re-hashed, "
        f"{log.checkpoints} signed checkpoint(s) match",
        log.ok and log.records > 0 and log.checkpoints > 0,
    )


def _figures(report: Report) -> dict[str, Any]:
    outcomes = Counter(s.outcome for s in report.sent)
    return {
        "ok": report.ok,
        "elapsed_s": round(report.elapsed_s, 2),
        "sent": len(report.sent),
        "accepted": outcomes.pop(ACCEPTED, 0),
        "no_receipt": outcomes.pop(NO_RECEIPT, 0),
        "refused": dict(sorted(outcomes.items())),
        "delivered": {a.value: len(report.ours(a)) for a in MAP_AGENCIES},
        "other_delivered": {
            a.value: len(report.inboxes[a]) - len(report.ours(a)) for a in MAP_AGENCIES
        },
        "steps": [
            {
                "name": s.step.name,
                "sender": s.step.sender.value,
                "message_id": s.message_id,
                "expected": s.step.expect,
                "outcome": s.outcome,
                "delivered_to": s.delivered_to,
            }
            for s in report.sent
        ],
        "expectations": [{"name": e.name, "held": e.held} for e in report.expectations],
    }


def _mark(held: bool) -> str:
    return "✓" if held else "✗"


def _summary_lines(figures: dict[str, Any]) -> list[str]:
    head = (
        f"s284 demo: {figures['sent']} frames sent, {figures['accepted']} accepted, "
        f"{sum(figures['refused'].values())} refused ({figures['elapsed_s']} s)"
    )
    lines = [head, "", "Delivered to each agency (verified and decrypted):"]
    lines += [f"  {agency:<12} {count}" for agency, count in figures["delivered"].items()]
    lines += ["Refused, by reason code:"]
    lines += [f"  {code:<26} {count}" for code, count in figures["refused"].items()]
    lines += ["Expectations:"]
    lines += [f"  {_mark(e['held'])} {e['name']}" for e in figures["expectations"]]
    held = sum(e["held"] for e in figures["expectations"])
    lines += ["", f"{held} of {len(figures['expectations'])} expectations held."]
    return lines


def print_report(report: Report, as_json: bool) -> None:
    figures = _figures(report)
    if as_json:
        _say(json.dumps(figures, indent=2))
    else:
        _say("\n".join(_summary_lines(figures)))
