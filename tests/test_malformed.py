"""Frames the parsers cannot handle, and floods of identical garbage (issue 17 item 4).

A JWS header nested 20,000 deep used to hit the JSON parser's recursion limit: the gateway
took it for a bug, retried it ten times with a traceback each, then dead-lettered it. Now
it is refused once as `frame.malformed` and the sender gets the receipt. Identical refusals
from one agency beyond a few per window are counted in one `refusals_counted` record whose
count is exact. (Gateway logic on the in-memory twin of NATS.)
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime

import pytest
import structlog

from audit import AuditStore
from broker import logs
from broker.errors import CryptoError, ReasonCode, Refusal
from broker.gateway.records import refused
from broker.gateway.refusals import RefusalCounter
from broker.gateway.stages import Arrived, Refused
from broker.nats.transport import Inbound
from broker.sdk import AgencyClient
from broker.wire.bounds import check_json
from broker.wire.jose import b64u, jws_unverified_header
from tests.frames import fresh_id
from tests.twin import TwinDeployment

NESTED = b"[" * 20_000 + b"]" * 20_000
COUNTED = re.compile(r"^(\d+) refusals counted")


def nested_header_frame() -> bytes:
    return f"{b64u(NESTED)}.{b64u(b'{}')}.{b64u(b'not a signature')}".encode()


async def _send_all(sender: AgencyClient, frames: list[bytes]) -> list[str]:
    """Publish each frame under a fresh Nats-Msg-Id; their receipts' reason codes."""
    ids = [fresh_id() for _ in frames]
    for mid, frame in zip(ids, frames, strict=True):
        await sender.publish_unchecked(frame, {"Nats-Msg-Id": mid})
    receipts = await asyncio.gather(*(sender.receipt(mid, timeout=30) for mid in ids))
    assert all(r.status == "refused" for r in receipts)
    return [str(r.reason) for r in receipts]


def _refusals_logged(dep: TwinDeployment, agency: str) -> tuple[list[str], list[int]]:
    """(reason codes of the one-by-one refusals, counts of the counted records)."""
    rows = AuditStore.open(dep.settings.database_url).records()
    mine = [r for r in rows if r["ingress_agency"] == agency]
    single = [r["reason_code"] for r in mine if r["event"] == "refused"]
    counted = [r for r in mine if r["event"] == "refusals_counted"]
    return single, [int(COUNTED.match(r["reason"]).group(1)) for r in counted]  # type: ignore[union-attr]


def test_the_bound_refuses_deep_nesting_before_the_parser() -> None:
    """A header nested 20,000 deep is a CryptoError (not RecursionError); strings full of
    brackets and ordinary headers pass."""
    with pytest.raises(CryptoError, match="limit is 8192"):  # a header is small
        jws_unverified_header(nested_header_frame().decode())
    with pytest.raises(CryptoError, match="nested more than 64 levels"):
        check_json(NESTED, max_bytes=len(NESTED), max_depth=64)
    shallow = b"[" * 64 + b"]" * 64
    check_json(shallow, max_bytes=len(shallow), max_depth=64)
    check_json(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', max_bytes=100, max_depth=2)
    with pytest.raises(CryptoError, match="limit is 10"):
        check_json(b'{"a": "01234567890"}', max_bytes=10, max_depth=2)


async def test_300_nested_headers_are_refused_once_each_without_a_traceback(
    twin_deployment, twin_gateway
):
    """300 such frames: 300 `frame.malformed` receipts, no retry, no traceback; the log
    holds the first few one by one and counts the rest exactly."""
    out = io.StringIO()
    logs.configure("INFO", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        async with await twin_deployment.client("dffh") as sender:
            reasons = await _send_all(sender, [nested_header_frame()] * 300)
    finally:
        logs.configure("INFO")
    text = out.getvalue()
    assert reasons == ["frame.malformed"] * 300
    assert "Traceback" not in text
    assert '"step_failed"' not in text  # a failed step is what retries a message
    single, counts = _refusals_logged(twin_deployment, "dffh")
    assert set(single) == {"frame.malformed"}
    assert len(single) + sum(counts) == 300  # exact, however the windows fell
    assert counts, "nothing was counted"
    assert len(single) < 300 // 2  # the first few of each window, not one a frame


async def test_refusals_held_at_shutdown_are_counted_and_answered(twin_deployment):
    """With a long window, the gateway stops while refusals are held: it commits their
    count on the way out and answers every one; a later window starts afresh."""
    settings = twin_deployment.settings.model_copy(
        update={"ack_wait_s": 120.0, "refusal_window_s": 60.0, "refusals_kept": 5}
    )
    async with await twin_deployment.client("police") as sender:
        ids = [fresh_id() for _ in range(47)]
        async with twin_deployment.gateway(settings=settings):
            for mid in ids:
                await sender.publish_unchecked(b"garbage", {"Nats-Msg-Id": mid})
            firsts = [await sender.receipt(mid, timeout=10) for mid in ids[:5]]
            await asyncio.sleep(0.5)  # the rest are held: the window is still open
        rest = await asyncio.gather(*(sender.receipt(mid, timeout=10) for mid in ids[5:]))
    assert {r.reason for r in firsts + rest} == {"frame.malformed"}
    single, counts = _refusals_logged(twin_deployment, "police")
    assert (len(single), counts) == (5, [42])


def _garbage(seq: int, agency: str = "police", delivered: int = 1) -> Refused:
    msg = Inbound(b"x", f"s284.ingress.{agency}", {}, seq, delivered, datetime.now(UTC), None)  # type: ignore[arg-type]
    return refused(Arrived(msg), Refusal(ReasonCode.FRAME_MALFORMED, "not JWS"), "n1", "v1")


def test_the_counter_keeps_a_few_per_window_and_counts_the_rest_exactly() -> None:
    """Per (agency, reason): `kept` pass, the rest are held; a full hold and the final call
    each give one summary, a closed window starts afresh; a redelivery is not counted twice;
    another agency's refusals are counted apart."""
    now = [0.0]
    counter = RefusalCounter(kept=3, window_s=10.0, node="n1", max_held=50, clock=lambda: now[0])
    assert len(counter.fold([_garbage(s) for s in range(1, 41)])) == 3
    assert counter.due() == []  # 37 held: neither full nor closed
    later = [_garbage(s) for s in range(41, 81)] + [_garbage(5, delivered=2), _garbage(900, "dffh")]
    assert len(counter.fold(later)) == 1  # dffh's first
    full = counter.due()
    assert [len(c.refused) for c in full] == [77]  # seq 5 once
    now[0] = 10.0
    assert counter.due() == []  # nothing held; the window closes
    assert len(counter.fold([_garbage(s) for s in range(81, 86)])) == 3  # a new window
    final = counter.due(final=True)
    assert [len(c.refused) for c in final] == [2]
    counts = [int(COUNTED.match(c.record.reason).group(1)) for c in full + final]  # type: ignore[union-attr]
    assert sum(counts) + 3 + 3 == 85
    assert {c.record.event for c in full + final} == {"refusals_counted"}
