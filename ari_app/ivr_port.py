"""The IVR engine's view of a live call (ivr.engine.FlowPort): prompts, keys, speech, HTTP decisions and
voicemail over ARI, each step written to the call's record.

The engine decides what comes next; this adapter only knows how to do one step on the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

import aiohttp

from ari_app.ari import AriError, AriNotFound
from ari_app.call_connect import _store_wav
from ari_app.media.interpret import Detection
from detectors import events as kinds
from ivr.prompts import PromptRenderer

if TYPE_CHECKING:
    from ari_app.inbound_call import InboundCall

log = logging.getLogger(__name__)

PLAYBACK_LIMIT = 120.0  # seconds: a prompt that never reports finishing must not hold the call forever
NEXT_DIGIT_WAIT = 3.0  # seconds between digits of a gathered number
VOICEMAIL_GRACE = 5.0  # seconds beyond max_seconds for Asterisk to report the message finished
HTTP_BODY_LIMIT = 64 * 1024  # a decision answer is a small JSON object


class CallFlowPort:
    def __init__(self, call: "InboundCall", prompts: PromptRenderer | None,
                 http: aiohttp.ClientSession | None) -> None:
        self.call = call
        self.prompts = prompts
        self.http = http
        self._plays = 0
        self.cursor = len(call.digits)  # keys typed ahead are answers to the next questions, in order

    # --- prompts -----------------------------------------------------------------------------------------

    async def media(self, prompts: Iterable[Any]) -> list[str]:
        """ARI media URIs for a prompt list; text is rendered with espeak-ng (cached)."""
        uris: list[str] = []
        for prompt in prompts:
            kind, value = prompt.kind, str(prompt.value)
            if kind == "text":
                try:
                    if self.prompts is None:
                        raise RuntimeError("no prompt renderer")
                    uris.append(await self.prompts.sound(value))
                except Exception as exc:  # espeak-ng missing or failing: the flow goes on without this prompt
                    log.warning("call %s: cannot render %r: %s", self.call.id, value[:60], exc)
            elif kind == "sound":
                uris.append(f"sound:{value}")
            elif kind == "file":
                uris.append("sound:" + re.sub(r"\.[A-Za-z0-9]{1,8}$", "", value))  # Asterisk picks the format
            elif kind in ("digits", "number", "tone"):
                uris.append(f"{kind}:{value}")
            elif kind == "media":  # Ringpool's own prompts, already ARI media (never from a flow file)
                uris += [uri if ":" in uri else f"sound:{uri}" for uri in value.split(",") if uri]
            else:
                raise ValueError(f"unknown prompt kind {kind!r}")
        return uris

    async def _start(self, prompts: Iterable[Any]) -> str | None:
        uris = await self.media(prompts)
        if not uris:
            return None
        self._plays += 1
        playback_id = f"{self.call.id}-ivr-{self._plays}-{int(time.monotonic() * 1000)}"
        await self.call.ctx.rest.play(self.call.inbound, uris, playback_id=playback_id)
        return playback_id

    async def _stop(self, playback_id: str | None) -> None:
        if playback_id and playback_id not in self.call.view.playbacks_done:
            with contextlib.suppress(AriNotFound):
                await self.call.ctx.rest.stop_playback(playback_id)

    async def play(self, prompts: tuple[Any, ...], *, interruptible: bool) -> str | None:
        call = self.call
        start = self.cursor
        playback_id = await self._start(prompts)
        if playback_id is None:
            return None
        await call._wait(lambda: True if playback_id in call.view.playbacks_done or call._caller_gone()
                         or (interruptible and len(call.digits) > start) else None, PLAYBACK_LIMIT)
        call._check_caller()
        if interruptible and len(call.digits) > start:
            await self._stop(playback_id)
            self.cursor = start + 1
            return call.digits[start]
        return None

    # --- input -------------------------------------------------------------------------------------------

    async def gather_digits(self, prompts: tuple[Any, ...], *, min_len: int, max_len: int, terminator: str | None,
                            timeout: float) -> str:
        call = self.call
        start = self.cursor

        def entered() -> tuple[str, int] | None:
            got = call.digits[start:]
            if terminator and terminator in got[:max_len + 1]:
                return "".join(got[: got.index(terminator)]), got.index(terminator) + 1
            return ("".join(got[:max_len]), max_len) if len(got) >= max_len else None

        if entered() is None:
            playback_id = await self._start(prompts)
            if playback_id:
                await call._wait(lambda: True if playback_id in call.view.playbacks_done or call._caller_gone()
                                 or len(call.digits) > start else None, PLAYBACK_LIMIT)
                await self._stop(playback_id)
        while not call._caller_gone() and entered() is None:
            seen = len(call.digits)
            wait = NEXT_DIGIT_WAIT if seen > start else timeout
            if await call._wait(lambda: True if len(call.digits) > seen or call._caller_gone() else None,
                                wait) is None:
                break
        call._check_caller()
        found = entered()
        digits, used = found if found is not None else ("".join(call.digits[start:]), len(call.digits) - start)
        self.cursor = start + used
        return digits

    async def menu_input(self, prompts: tuple[Any, ...], *, keys: Iterable[str], words: dict[str, str] | Iterable[str],
                         timeout: float) -> tuple[str | None, str]:
        """One key (DTMF) or one of ``words`` (speech), whichever comes first, during or after the prompt. A key
        typed ahead answers at once, without the prompt."""
        call = self.call
        heard_from = len(call.detections.items)
        vocabulary = list(words.keys()) if isinstance(words, dict) else list(words)
        if vocabulary:
            await call._start_listening()  # spoken answers need the caller's audio reaching the recogniser

        def answer() -> tuple[str | None, str] | None:
            if len(call.digits) > self.cursor:
                self.cursor += 1
                return call.digits[self.cursor - 1], "dtmf"
            word = _word_heard(call.detections.items[heard_from:], vocabulary)
            if word is not None:
                return word, "speech"
            return None

        if (got := answer()) is not None:
            return got
        playback_id = await self._start(prompts)

        def answered_or(done: Callable[[], bool]) -> tuple[str | None, str] | None:
            if call._caller_gone():
                return None, "gone"
            return answer() or ((None, "done") if done() else None)

        if playback_id:
            got = await call._wait(lambda: answered_or(lambda: playback_id in call.view.playbacks_done),
                                   PLAYBACK_LIMIT)
            await self._stop(playback_id)
            call._check_caller()
            if got and got[1] in ("dtmf", "speech"):
                return got
        got = await call._wait(lambda: answered_or(lambda: False), timeout)
        call._check_caller()
        return got if got else (None, "timeout")

    async def gather_speech(self, prompts: tuple[Any, ...], *, words: tuple[str, ...], timeout: float) -> str | None:
        word, how = await self.menu_input(prompts, keys=(), words=words, timeout=timeout)
        return word if how == "speech" else None

    # --- outside decisions and messages ------------------------------------------------------------------

    async def http_decision(self, url: str, payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """POST the call's attributes; the JSON object answered, or None on any failure (the flow's fallback)."""
        if self.http is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                async with self.http.post(url, json=payload, allow_redirects=False) as response:
                    if response.status != 200:
                        log.info("call %s: decision %s answered %s", self.call.id, url, response.status)
                        return None
                    body = await response.content.read(HTTP_BODY_LIMIT + 1)
            if len(body) > HTTP_BODY_LIMIT:
                return None
            answer = json.loads(body)
            return answer if isinstance(answer, dict) else None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            log.info("call %s: decision %s failed: %s", self.call.id, url, exc)
            return None

    async def record_voicemail(self, prompts: tuple[Any, ...], max_seconds: int) -> str | None:
        """Play the prompt, record the caller after a beep until # or ``max_seconds``; the saved file's path
        relative to the state folder, or None when nothing was left."""
        call = self.call
        await self.play(prompts, interruptible=False)
        name = f"ringpool-vm-{call.id}"
        try:
            await call.ctx.rest.record_channel(call.inbound, name, format="wav", max_duration=max_seconds,
                                               max_silence=0, beep=True, terminate_on="#")
        except AriError as exc:
            log.warning("call %s: cannot record voicemail: %s", call.id, exc)
            return None
        await call._wait(lambda: True if name in call.view.recordings_done or call._caller_gone() else None,
                         max_seconds + VOICEMAIL_GRACE)
        if name not in call.view.recordings_done:
            with contextlib.suppress(AriError):
                await call.ctx.rest.stop_recording(name)
            await call._wait(lambda: True if name in call.view.recordings_done else None, VOICEMAIL_GRACE)
        try:
            data = await call.ctx.rest.fetch_stored_recording(name)
        except AriError as exc:
            log.warning("call %s: voicemail not found: %s", call.id, exc)
            return None
        with contextlib.suppress(AriError):
            await call.ctx.rest.delete_stored_recording(name)
        path = call.ctx.settings.state_dir / "recordings" / f"{call.id}-voicemail.wav"
        seconds = await asyncio.get_running_loop().run_in_executor(None, _store_wav, path, data)
        if not seconds:
            return None
        stored = str(path.relative_to(call.ctx.settings.state_dir))
        call._write(call={"voicemail": stored}, events=[("voicemail", {"seconds": seconds})])
        return stored

    async def event(self, kind: str, data: dict[str, Any]) -> None:
        self.call._write(events=[(kind, data or None)])


def _word_heard(detections: list[Detection], words: list[str]) -> str | None:
    """The first expected word in the caller's recognised speech (whole words, any case)."""
    if not words:
        return None
    for detection in detections:
        if detection.leg != "caller" or detection.kind != kinds.TRANSCRIPT:
            continue
        text = f" {str(detection.details.get('text', '')).lower()} "
        for word in words:
            if re.search(rf"\b{re.escape(word.lower())}\b", text):
                return word
    return None
