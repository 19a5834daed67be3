"""The agent marks a caller spam from the phone: *7 on the destination leg of a bridged call."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ari_app.inbound_call import AGENT_SPAM_CODE, InboundCall


class Writes:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def submit(self, method: str, call_id: str, *, call: dict[str, Any] | None = None, **_: Any) -> None:
        if call:
            self.calls.append(call)


def dtmf(channel: str, digit: str) -> dict[str, Any]:
    return {"type": "ChannelDtmfReceived", "digit": digit, "duration_ms": 100, "channel": {"id": channel}}


def test_star_7_from_the_agent_marks_the_call_spam_once() -> None:
    writes = Writes()
    ctx = SimpleNamespace(store=writes, registry=None, settings=None, rest=None, hub=None, on_rejection=None)
    call = InboundCall(ctx, "call-1", {"id": "in-1"}, {})  # type: ignore[arg-type]
    call.outbound.append("out-1")
    for digit in "1*":
        call.deliver(dtmf("in-1", digit))  # the caller pressing *7 marks nothing
    call.deliver(dtmf("in-1", "7"))
    assert not any(c.get("spam") for c in writes.calls)
    for digit in "5" + AGENT_SPAM_CODE + AGENT_SPAM_CODE:
        call.deliver(dtmf("out-1", digit))
    marks = [c for c in writes.calls if c.get("spam")]
    assert marks == [{"spam": 1, "spam_reason": f"the agent marked it spam ({AGENT_SPAM_CODE} on the phone)"}]
