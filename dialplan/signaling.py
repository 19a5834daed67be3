"""The signaling of an inbound call, read from the ARI channel snapshot.

The dialplan copies the SIP headers Ringpool cares about into channel variables before Stasis (and
ari.conf's channelvars puts them into every snapshot), so nothing here costs a REST round-trip. Values come
from the network: they are cut to a sane length and stripped of control characters, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ari_app.config import normalise_number

MAX_HEADER = 512


def clean(value: Any, limit: int = MAX_HEADER) -> str | None:
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if ch.isprintable())[:limit].strip()
    return text or None


@dataclass(frozen=True)
class Signaling:
    channel_id: str
    channel_name: str | None
    caller_number: str | None
    caller_name: str | None
    dialed_number: str
    trunk: str | None
    p_asserted_identity: str | None
    privacy: str | None
    diversion: str | None
    p_charge_info: str | None
    test_account: str | None = None  # the softphone test account that placed the call (RINGPOOL_TEST_ACCOUNT)

    @property
    def anonymous(self) -> bool:
        privacy = (self.privacy or "").lower()
        # a caller number without digits ("anonymous", "Restricted") is a withheld number too
        number = self.caller_number or ""
        return "id" in privacy or "user" in privacy or not any(ch.isdigit() for ch in number)


def signaling_from_channel(channel: dict[str, Any]) -> Signaling:
    caller = channel.get("caller") or {}
    dialplan = channel.get("dialplan") or {}
    variables = channel.get("channelvars") or {}
    caller_number = clean(caller.get("number"), 64)
    # Only the test-account dialplan context sets RINGPOOL_TEST_ACCOUNT (a SIP header cannot).
    test_account = clean(variables.get("RINGPOOL_TEST_ACCOUNT"), 64)
    return Signaling(
        channel_id=str(channel.get("id", "")),
        channel_name=clean(channel.get("name"), 128),
        caller_number=normalise_number(caller_number) or caller_number if caller_number else None,
        caller_name=clean(caller.get("name"), 128),
        dialed_number=normalise_number(str(dialplan.get("exten") or "")),
        trunk=None if test_account else clean(variables.get("RINGPOOL_TRUNK"), 64),
        p_asserted_identity=clean(variables.get("RINGPOOL_PAI")),
        privacy=clean(variables.get("RINGPOOL_PRIVACY")),
        diversion=clean(variables.get("RINGPOOL_DIVERSION")),
        p_charge_info=clean(variables.get("RINGPOOL_CHARGE")),
        test_account=test_account,
    )
