"""A minimal RTP receiver for externalMedia: one UDP socket per tap, slin16 payload to int16 samples.

Asterisk sends signed linear as network byte order (big-endian). Malformed or foreign packets are counted
and dropped, never raised: the network must not be able to crash a call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

RTP_HEADER = 12


@dataclass
class RtpStats:
    packets: int = 0
    dropped: int = 0
    bytes: int = 0
    lost: int = 0


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(sequence number, payload) of an RTP packet, or None if it is not one."""
    if len(packet) < RTP_HEADER or packet[0] >> 6 != 2:
        return None
    csrc = packet[0] & 0x0F
    offset = RTP_HEADER + 4 * csrc
    if packet[0] & 0x10:  # header extension
        if len(packet) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(packet[offset + 2:offset + 4], "big")
    end = len(packet)
    if packet[0] & 0x20:  # padding
        end -= packet[-1]
    if offset > end:
        return None
    return int.from_bytes(packet[2:4], "big"), packet[offset:end]


class RtpReceiver(asyncio.DatagramProtocol):
    """Turns slin RTP packets into native int16 frames for ``on_frame``."""

    def __init__(self, on_frame: Callable[[np.ndarray], None], expected_host: str = "127.0.0.1") -> None:
        self.on_frame = on_frame
        self.expected_host = expected_host
        self.stats = RtpStats()
        self.transport: asyncio.DatagramTransport | None = None
        self._last_seq: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        parsed = rtp_payload(data) if addr[0] == self.expected_host else None
        if parsed is None or len(parsed[1]) % 2:
            self.stats.dropped += 1
            return
        seq, payload = parsed
        if self._last_seq is not None:
            gap = (seq - self._last_seq) & 0xFFFF
            if 1 < gap < 1000:
                self.stats.lost += gap - 1
        self._last_seq = seq
        self.stats.packets += 1
        self.stats.bytes += len(payload)
        frame = np.frombuffer(payload, dtype=">i2").astype(np.int16)
        try:
            self.on_frame(frame)
        except Exception:
            log.exception("media frame handler failed")

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_receiver(on_frame: Callable[[np.ndarray], None], host: str = "127.0.0.1") -> RtpReceiver:
    """Bind a fresh UDP port (chosen by the OS) on ``host``."""
    loop = asyncio.get_running_loop()
    _transport, protocol = await loop.create_datagram_endpoint(
        lambda: RtpReceiver(on_frame, expected_host=host), local_addr=(host, 0))
    return protocol
