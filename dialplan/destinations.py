"""Dial strings for configured destinations: the only strings Ringpool ever dials (no toll fraud)."""

from __future__ import annotations

from ari_app.config import Destination, Trunk


def dial_string(dest: Destination, trunks: dict[str, Trunk]) -> str:
    if dest.kind == "sip":
        return f"PJSIP/{dest.endpoint}"
    return f"PJSIP/{dest.number}@{trunks[dest.trunk or ''].endpoint}"
