"""Spoken prompts rendered offline from text with espeak-ng and sox, cached by content.

Asterisk plays them as ``sound:<path without .wav>``: 8 kHz, mono, 16-bit WAV is what it reads without
transcoding. Rendering runs a subprocess, so callers on the event loop use an executor.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

ASTERISK_RATE = 8000
MAX_TEXT = 1000  # characters: a prompt longer than this is cut (placeholders come from visitors)


def render_wav(text: str, folder: Path, *, rate: int = ASTERISK_RATE, voice: str = "en-us", speed: int = 150) -> Path:
    """The WAV for ``text`` in ``folder``, rendering it on first use; the same text is never rendered twice."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("espeak-ng and sox are needed to render prompts (scripts/install-system-deps.sh)")
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{voice}|{speed}|{rate}|{text}|R".encode()).hexdigest()[:16]  # R: repeatable dither
    out = folder / f"{key}.wav"
    if not out.exists():
        with tempfile.TemporaryDirectory() as td:
            raw = Path(td) / "raw.wav"
            # the text on stdin, never as an argument: a visitor's keyword starting with '-' is not an option
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), "--stdin"],
                           input=text[:MAX_TEXT].encode(), check=True, capture_output=True, timeout=60)
            tmp = Path(td) / "out.wav"
            subprocess.run(["sox", "-R", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(tmp)],
                           check=True, capture_output=True, timeout=60)
            shutil.move(str(tmp), out)  # whole file or nothing: a crash never leaves half a prompt
    return out


def asterisk_sound(wav: Path) -> str:
    """The ARI media URI of a rendered prompt."""
    return "sound:" + str(wav.with_suffix(""))


class PromptRenderer:
    """Text prompts as ARI media, rendered off the event loop once per text and shared by every call."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._done: dict[str, str] = {}
        self._pending: dict[str, "asyncio.Future[str]"] = {}

    async def sound(self, text: str) -> str:
        if text in self._done:
            return self._done[text]
        if text not in self._pending:
            loop = asyncio.get_running_loop()
            self._pending[text] = loop.run_in_executor(None, render_wav, text, self.folder)  # type: ignore[assignment]
        try:
            wav = await self._pending[text]
        finally:
            self._pending.pop(text, None)
        self._done[text] = asterisk_sound(wav)  # type: ignore[arg-type]
        return self._done[text]

    async def prepare(self, texts: Iterable[str]) -> None:
        """Render ahead (at start or when a flow changes) so the first caller does not wait for espeak-ng."""
        for text in texts:
            try:
                await self.sound(text)
            except Exception as exc:
                log.warning("cannot render prompt %r: %s", text[:60], exc)
