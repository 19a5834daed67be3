"""Speech recognition with Vosk, off the event loop, plus keyword hits.

Recognition is slow next to the tone detectors (milliseconds per 20 ms frame),
so it runs in a thread pool: `SpeechStream.push` only queues audio and hands
whole chunks to the pool; results come back from `poll`/`finish`.  A model is
only ever loaded from a local path given in config (never downloaded); with no
path, or a path that does not exist, speech is off and says so once in the log.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .events import TRANSCRIPT, Event
from .keywords import KeywordSpotter

log = logging.getLogger(__name__)

_models: dict[str, object] = {}
_models_lock = threading.Lock()
_logged: set[str] = set()
_default_executor: ThreadPoolExecutor | None = None


@dataclass
class SpeechConfig:
    model_path: str | None = None        # a Vosk model folder; None = speech off
    keywords: dict[str, str] | None = None  # rule name -> expression (see keywords.py)
    chunk_s: float = 0.25                # audio handed to the pool per job
    words: bool = True                   # ask Vosk for word times (gives transcript times)


def _log_once(key: str, msg: str, *args) -> None:
    if key not in _logged:
        _logged.add(key)
        log.warning(msg, *args)


def load_model(model_path: str | os.PathLike | None):
    """The Vosk model at model_path (loaded once per process), or None if speech is off."""
    if not model_path:
        _log_once("none", "speech recognition off: no Vosk model path configured")
        return None
    path = os.fspath(model_path)
    if not os.path.isdir(path):
        _log_once(path, "speech recognition off: Vosk model folder %s does not exist", path)
        return None
    with _models_lock:
        if path not in _models:
            import vosk  # optional dependency, imported only when a model is configured

            vosk.SetLogLevel(-1)
            _models[path] = vosk.Model(path)
        return _models[path]


def model_ready(model_path: str | os.PathLike | None) -> bool:
    """Whether load_model(model_path) would return at once (the model is already in memory)."""
    return bool(model_path) and os.fspath(model_path) in _models


def executor() -> ThreadPoolExecutor:
    """Shared pool for recognition jobs (created on first use)."""
    global _default_executor
    if _default_executor is None:
        _default_executor = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                               thread_name_prefix="vosk")
    return _default_executor


class Recognizer:
    """Blocking recogniser for one stream; call from one thread at a time."""

    def __init__(self, model, rate: int, spotter: KeywordSpotter | None = None, words: bool = True):
        import vosk

        self.rate = rate
        self.rec = vosk.KaldiRecognizer(model, rate)
        if words:
            self.rec.SetWords(True)
        self.spotter = spotter
        self.fed = 0  # samples accepted so far

    def accept(self, pcm: bytes | np.ndarray) -> list[Event]:
        data = pcm.astype(np.int16, copy=False).tobytes() if isinstance(pcm, np.ndarray) else bytes(pcm)
        t0 = self.fed / self.rate
        self.fed += len(data) // 2
        if self.rec.AcceptWaveform(data):
            return self._events(self.rec.Result(), t0)
        return []

    def finish(self) -> list[Event]:
        return self._events(self.rec.FinalResult(), self.fed / self.rate)

    def _events(self, result_json: str, fallback_t: float) -> list[Event]:
        r = json.loads(result_json)
        text = (r.get("text") or "").strip()
        if not text:
            return []
        ws = r.get("result") or []
        start = ws[0]["start"] if ws else fallback_t
        end = ws[-1]["end"] if ws else self.fed / self.rate
        out = [Event(TRANSCRIPT, start, max(0.0, end - start), {"text": text, "final": True})]
        if self.spotter is not None:
            out.extend(self.spotter.spot(text, start, max(0.0, end - start)))
        return out


class AsyncRecognizer:
    """`await accept(pcm)` runs recognition in the executor, never on the loop."""

    def __init__(self, recognizer: Recognizer, pool: Executor | None = None):
        self.rec = recognizer
        self.pool = pool or executor()
        self._lock = asyncio.Lock()  # one job at a time: Vosk recognisers are not thread-safe

    async def accept(self, pcm: bytes | np.ndarray) -> list[Event]:
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.rec.accept, pcm)

    async def finish(self) -> list[Event]:
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.rec.finish)


class SpeechStream:
    """Fire-and-forget speech for a DetectorPipeline: push never blocks or waits."""

    def __init__(self, recognizer: Recognizer, chunk_s: float = 0.25, pool: Executor | None = None):
        self.rec = recognizer
        self.pool = pool or executor()
        self.chunk = int(chunk_s * recognizer.rate)
        self._pending: list[np.ndarray] = []
        self._n = 0
        self._job: Future | None = None
        self._ready: list[Event] = []

    def push(self, pcm: np.ndarray, t: float = 0.0) -> None:
        self._pending.append(np.asarray(pcm, dtype=np.int16).copy())
        self._n += len(pcm)
        self._collect()
        self._submit()

    def poll(self) -> list[Event]:
        self._collect()
        self._submit()
        out, self._ready = self._ready, []
        return out

    async def finish(self) -> list[Event]:
        if self._job is not None:
            self._ready.extend(await asyncio.wrap_future(self._job))
            self._job = None
        data = self._take()
        loop = asyncio.get_running_loop()

        def last() -> list[Event]:
            ev = self.rec.accept(data) if len(data) else []
            return ev + self.rec.finish()

        self._ready.extend(await loop.run_in_executor(self.pool, last))
        out, self._ready = self._ready, []
        return out

    def _take(self) -> np.ndarray:
        data = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        self._pending, self._n = [], 0
        return data

    def _collect(self) -> None:
        if self._job is not None and self._job.done():
            self._ready.extend(self._job.result())
            self._job = None

    def _submit(self) -> None:
        if self._job is None and self._n >= self.chunk:
            self._job = self.pool.submit(self.rec.accept, self._take())


def create_speech(config: SpeechConfig | None, rate: int, pool: Executor | None = None) -> SpeechStream | None:
    """A SpeechStream for one call, or None (logged once) when no model is configured."""
    model = load_model(config.model_path if config else None)
    if model is None:
        return None
    spotter = KeywordSpotter(config.keywords) if config.keywords else None
    return SpeechStream(Recognizer(model, rate, spotter, config.words), config.chunk_s, pool)
