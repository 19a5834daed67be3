"""A self-contained audio tap for the benchmark: snoop (spy=in) + externalMedia slin16 -> UDP, in a mixing bridge.

The same three ARI steps as ``ari_app.media.tap.MediaTap`` (see platform-notes), kept here so the benchmark
does not depend on how the app wires taps into its detector hub. Frames go to ``on_frame`` (int16, 16 kHz).
"""

from __future__ import annotations

from typing import Awaitable, Callable

import numpy as np

from ari_app.ari import AriError, AriNotFound, AriRest
from ari_app.media.rtp import RtpReceiver, open_receiver

SAMPLE_RATE = 16000


class BenchTap:
    def __init__(self, rest: AriRest, app: str, *, tap_id: str, channel_id: str,
                 on_frame: Callable[[np.ndarray], None], own: Callable[[str], None]) -> None:
        self.rest, self.app, self.channel_id = rest, app, channel_id
        self.on_frame, self.own = on_frame, own
        self.snoop_id, self.media_id, self.bridge_id = f"{tap_id}-snoop", f"{tap_id}-media", f"{tap_id}-bridge"
        self.receiver: RtpReceiver | None = None

    async def start(self, in_stasis: Callable[[tuple[str, ...]], Awaitable[bool]]) -> None:
        self.receiver = await open_receiver(self.on_frame)
        for channel in (self.snoop_id, self.media_id):
            self.own(channel)
        await self.rest.external_media(self.app, f"127.0.0.1:{self.receiver.port}", format="slin16",
                                       channel_id=self.media_id)
        await self.rest.snoop(self.channel_id, self.app, spy="in", app_args="snoop", snoop_id=self.snoop_id)
        await self.rest.create_bridge(bridge_id=self.bridge_id, type="mixing", name=f"bench-{self.bridge_id}")
        if not await in_stasis((self.snoop_id, self.media_id)):
            raise RuntimeError(f"tap channels of {self.channel_id} did not enter the app")
        await self.rest.add_to_bridge(self.bridge_id, [self.snoop_id, self.media_id])

    async def stop(self) -> None:
        for channel in (self.snoop_id, self.media_id):
            try:
                await self.rest.hangup(channel)
            except AriNotFound:
                pass
            except AriError:
                pass
        try:
            await self.rest.destroy_bridge(self.bridge_id)
        except AriError:
            pass
        if self.receiver is not None:
            self.receiver.close()
