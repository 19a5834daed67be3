"""RTP parsing, the receiver's robustness to garbage, and what detections mean for the call record."""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np
import pytest

from ari_app.media.interpret import Detection
from ari_app.media.rtp import open_receiver, rtp_payload
from detectors.events import Event
from storage.calls import CallStore, NewCall, NewLeg
from storage.db import open_database, utcnow


def rtp(seq: int, payload: bytes, *, csrc: int = 0, extension: bytes | None = None, padding: int = 0) -> bytes:
    first = 0x80 | csrc | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, 118, seq, seq * 320, 0x1234) + b"\0\0\0\0" * csrc
    if extension is not None:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header + payload + (b"\0" * (padding - 1) + bytes([padding]) if padding else b"")


def test_rtp_payload_plain_csrc_extension_and_padding() -> None:
    assert rtp_payload(rtp(7, b"abcd")) == (7, b"abcd")
    assert rtp_payload(rtp(8, b"abcd", csrc=2)) == (8, b"abcd")
    assert rtp_payload(rtp(9, b"abcd", extension=b"\1\2\3\4")) == (9, b"abcd")
    assert rtp_payload(rtp(10, b"abcd", padding=4)) == (10, b"abcd")


@pytest.mark.parametrize("packet", [b"", b"\x80", b"\x40" + b"\0" * 20, rtp(1, b"")[:11],
                                    bytes([0x9F]) + b"\0" * 12, bytes([0x90]) + b"\0" * 12])
def test_rtp_payload_rejects_garbage(packet: bytes) -> None:
    result = rtp_payload(packet)
    assert result is None or result[1] == b""


async def test_receiver_decodes_big_endian_and_survives_garbage() -> None:
    frames: list[np.ndarray] = []
    receiver = await open_receiver(frames.append)
    samples = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for packet in (b"garbage", rtp(1, samples.astype(">i2").tobytes()), rtp(2, b"\1\2\3"),
                       rtp(4, samples.astype(">i2").tobytes())):
            sender.sendto(packet, ("127.0.0.1", receiver.port))
        for _ in range(50):
            if len(frames) == 2:
                break
            await asyncio.sleep(0.01)
    receiver.close()
    assert len(frames) == 2 and all((f == samples).all() for f in frames)
    assert receiver.stats.dropped == 2 and receiver.stats.lost == 2  # seq 2 (odd payload) and 3 never decoded


@pytest.mark.parametrize("kind, details, flags", [
    ("fax_cng", {}, {"fax_detected": 1}),
    ("v21_preamble", {}, {"fax_detected": 1}),
    ("answer_tone", {"variant": "ans"}, {"fax_detected": 1}),
    ("answer_tone", {"variant": "ansam"}, {"modem_detected": 1}),
    ("answer_tone", {"variant": "bell", "freq_hz": 2225}, {"modem_detected": 1}),
    ("speech_start", {}, {"voice_detected": 1}),
    ("silence", {"digital": True}, {"silence_detected": 1}),
    ("dtmf_machine", {"reasons": ["regular"]}, {"machine_dtmf": 1}),
    ("busy", {}, {}),
])
def test_detection_flags(kind: str, details: dict, flags: dict) -> None:
    assert Detection.from_event(Event(kind, 1.0, 0.5, details), "caller").flags() == flags


def test_detections_fold_into_the_call_record(tmp_path) -> None:
    store = CallStore(open_database(tmp_path / "db.sqlite"))
    store.create_call(NewCall(id="c1", inbound_channel="in1", arrived_at=utcnow(), dialed_number="1555"))
    store.apply("c1", call={"state": "bridged"}, new_legs=[NewLeg("out1", "outbound", "desk", "PJSIP/dest-desk")],
                events=[("bridged", utcnow(), {"legs": ["in1", "out1"]})])
    for event in (Event("dtmf", 1.0, 0.08, {"digit": "1"}), Event("dtmf", 1.3, 0.08, {"digit": "#"}),
                  Event("fax_cng", 2.0, 0.5, {}), Event("transcript", 3.0, 1.0, {"text": "hello", "final": True}),
                  Event("amd", 4.0, 0.0, {"status": "MACHINE", "cause": "LONGGREETING-1500-1500"})):
        d = Detection.from_event(event, "caller")
        store.add_detection("c1", leg=d.leg, source=d.source, kind=d.kind, start=d.start, duration=d.duration,
                            details=d.details, flags=d.flags(), appends=d.appends(), values=d.values())
    call = store.get_call("c1")
    assert call["dtmf_digits"] == "1#" and call["fax_detected"] == 1 and call["modem_detected"] == 0
    assert call["transcript"].strip() == "hello" and call["amd_result"] == "MACHINE:LONGGREETING-1500-1500"
    assert [d["kind"] for d in call["detections"]] == ["dtmf", "dtmf", "fax_cng", "transcript", "amd"]
    assert [leg["channel_id"] for leg in call["legs"]] == ["in1", "out1"]
    with pytest.raises(ValueError):
        store.add_detection("c1", leg="caller", source="inband", kind="x", start=0, duration=0, details={},
                            flags={"disposition; DROP TABLE calls": 1}, appends={}, values={})
    with pytest.raises(ValueError):
        store.apply("c1", call={"no_such_column": 1})


def test_rfc4733_digits_get_the_machine_dialling_analysis() -> None:
    """Out-of-band digits blasted with 40 ms gaps are machine dialling, like in-band ones."""
    import time as clock

    from ari_app.call_detections import CallDetections

    class Store:
        def submit(self, *args, **kwargs):  # the detections' writes are not the point here
            return None

    detections = CallDetections(Store(), "c1", wake=lambda: None)  # type: ignore[arg-type]
    start = clock.monotonic()
    for i, digit in enumerate("4712"):
        detections.started = start - (i * 0.2 + 0.16)  # each digit ends 200 ms after the previous one
        detections.rfc4733({"digit": digit, "duration_ms": 160}, "caller")
    kinds = [d.kind for d in detections.items]
    assert kinds.count("dtmf") == 4 and "dtmf_machine" in kinds


def test_softphone_arguments_survive_values_that_start_with_a_dash() -> None:
    """A generated password can start with '-' (secrets.token_urlsafe): it must not be read as an option."""
    from ari_app.testcall import softphone_argv
    from ari_app.testcall.softphone import build_parser

    parsed = build_parser().parse_args(softphone_argv(call="sip:1@127.0.0.1", password="-Ab3", hold=1.0,
                                                      header={"Privacy": "id"}))
    assert (parsed.password, parsed.header, parsed.hold) == ("-Ab3", ["Privacy: id"], 1.0)
