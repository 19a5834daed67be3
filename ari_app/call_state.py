"""What one call has seen of its channels, folded from ARI events; and the explicit states of a call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from storage.db import format_time

END_EVENTS = ("ChannelHangupRequest", "StasisEnd", "ChannelDestroyed")


class CallState(str, Enum):
    ARRIVED = "arrived"
    REJECTED = "rejected"
    EARLY_MEDIA = "early_media"
    ANSWERED = "answered"
    GREETING = "greeting"
    CHALLENGE = "challenge"  # the extra treatment for suspicious callers: a digit to press, a voice to hear
    EXTENSION = "extension"  # asking an extension-site caller for the extension on the web page
    IVR = "ivr"  # in the campaign's flow: menus, questions, conditions
    QUEUED = "queued"  # waiting with music on hold for a destination to free up
    RINGING = "ringing"
    DIALING = "dialing"
    BRIDGED = "bridged"
    FALLBACK_MESSAGE = "fallback_message"
    ENDED = "ended"


class DialResult(str, Enum):
    EARLY_MEDIA = "early_media"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    MACHINE = "machine"  # answered by an answering machine (destination AMD)
    CALLER_GONE = "caller_gone"


# Q.850 causes as Asterisk reports them on an outbound leg that never answered.
_CAUSE_RESULTS = {17: DialResult.BUSY, 21: DialResult.BUSY, 18: DialResult.NO_ANSWER, 19: DialResult.NO_ANSWER}
_DIALSTATUS_RESULTS = {"ANSWER": DialResult.ANSWERED, "BUSY": DialResult.BUSY, "NOANSWER": DialResult.NO_ANSWER,
                       "CHANUNAVAIL": DialResult.FAILED, "CONGESTION": DialResult.FAILED}


def result_from_dialstatus(status: str) -> DialResult | None:
    return _DIALSTATUS_RESULTS.get(status.upper())


def result_from_cause(cause: int | None) -> DialResult:
    return _CAUSE_RESULTS.get(cause or 0, DialResult.FAILED)


def ari_time(event: dict[str, Any]) -> str | None:
    """An ARI event's own timestamp (``2026-11-22T17:01:02.123+0000``) in the storage format."""
    raw = event.get("timestamp")
    if not raw:
        return None
    try:
        return format_time(datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z"))
    except ValueError:
        return None


def event_channel_ids(event: dict[str, Any]) -> list[str]:
    """Every channel an event concerns, so it reaches the call that owns any of them."""
    ids = []
    for key in ("channel", "peer"):
        channel = event.get(key)
        if isinstance(channel, dict) and channel.get("id"):
            ids.append(channel["id"])
    for key in ("playback", "recording"):
        media = event.get(key)
        if isinstance(media, dict):
            target = str(media.get("target_uri", ""))
            if target.startswith("channel:"):
                ids.append(target[len("channel:"):])
    return ids


@dataclass
class ChannelEnd:
    at: str | None
    cause: int | None
    cause_text: str | None
    by_us: bool
    final: bool = False  # StasisEnd or ChannelDestroyed seen: no more events will come for it
    destroyed: bool = False  # ChannelDestroyed seen: its cause is the final one


@dataclass
class ChannelView:
    """Facts about the call's channels, updated by every event the call receives."""

    ended: dict[str, ChannelEnd] = field(default_factory=dict)
    end_order: list[str] = field(default_factory=list)
    dial_status: dict[str, str] = field(default_factory=dict)
    up: set[str] = field(default_factory=set)
    playbacks_done: set[str] = field(default_factory=set)
    hung_up_by_us: set[str] = field(default_factory=set)
    in_stasis: set[str] = field(default_factory=set)
    recordings_done: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> the finished recording

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        channel_id = channel.get("id")
        if kind in END_EVENTS and channel_id:
            end = self.ended.get(channel_id)
            cause = event.get("cause")
            if end is None:
                end = ChannelEnd(at=ari_time(event), cause=None, cause_text=None,
                                 by_us=channel_id in self.hung_up_by_us)
                self.ended[channel_id] = end
                self.end_order.append(channel_id)
            if isinstance(cause, int) and (end.cause is None or kind == "ChannelDestroyed"):
                end.cause = cause
                end.cause_text = event.get("cause_txt") or end.cause_text
            if kind in ("ChannelDestroyed", "StasisEnd"):
                end.final = True
                end.destroyed = end.destroyed or kind == "ChannelDestroyed"
                end.at = ari_time(event) or end.at
        elif kind == "StasisStart" and channel_id:
            self.in_stasis.add(channel_id)
        elif kind == "Dial":
            peer = (event.get("peer") or {}).get("id")
            status = event.get("dialstatus") or ""
            if peer and status:
                self.dial_status[peer] = status
        elif kind == "ChannelStateChange" and channel.get("state") == "Up" and channel_id:
            self.up.add(channel_id)
        elif kind == "PlaybackFinished":
            self.playbacks_done.add((event.get("playback") or {}).get("id", ""))
        elif kind in ("RecordingFinished", "RecordingFailed"):
            recording = event.get("recording") or {}
            self.recordings_done[str(recording.get("name", ""))] = recording

    def first_remote_end(self, among: tuple[str, ...] | None = None) -> str | None:
        """The first channel (of ``among``, default all) that hung up by itself, not by Ringpool."""
        for channel_id in self.end_order:
            if not self.ended[channel_id].by_us and (among is None or channel_id in among):
                return channel_id
        return None
