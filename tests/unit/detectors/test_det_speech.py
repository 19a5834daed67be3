import asyncio
import threading
import logging

import numpy as np
import pytest

from detectors import DetectorPipeline
from detectors import testsignals as ts
from detectors.speech import AsyncRecognizer, Recognizer, SpeechConfig, create_speech, load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_no_model_path_means_speech_off_with_one_log_line(caplog, tmp_path):
    import detectors.speech as sp

    sp._logged.clear()
    with caplog.at_level(logging.WARNING, logger="detectors.speech"):
        assert create_speech(SpeechConfig(None), 8000) is None
        assert create_speech(SpeechConfig(None), 8000) is None
        assert create_speech(SpeechConfig(str(tmp_path / "nope")), 8000) is None
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and all("speech recognition off" in m for m in msgs)


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_pipeline_transcribes_korean_without_blocking_the_loop(rate, ko_model_path, speech_cache, monkeypatch):
    """Recognition must never run on the event loop's thread: every Recognizer call is recorded with its thread
    (a structural check; a timing threshold would be flaky on a shared machine)."""
    from detectors.speech import Recognizer

    loop_thread = threading.get_ident()
    threads: list[int] = []
    for name in ("accept", "finish"):
        original = getattr(Recognizer, name)

        def spy(self, *args, _original=original, **kwargs):
            threads.append(threading.get_ident())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Recognizer, name, spy)
    x = ts.espeak("안녕하세요 가격을 알려주세요", rate, cache_dir=speech_cache)
    x = ts.pcm16(np.concatenate([np.zeros(rate // 4), x, np.zeros(rate // 2)]))
    speech = create_speech(SpeechConfig(ko_model_path, keywords={"any": "*"}), rate)
    p = DetectorPipeline(rate, speech=speech)
    frame = rate // 50
    ev = []
    for k in range(0, len(x), frame):  # as a UDP receiver would: one 20 ms frame at a time
        ev += p.feed(x[k:k + frame])
        await asyncio.sleep(0)
    ev += await p.aclose()
    text = [e for e in ev if e.kind == "transcript"]
    assert text and text[0].details["text"].strip()
    assert [e for e in ev if e.kind == "keyword"]
    assert threads and loop_thread not in threads, "speech recognition ran on the event loop's thread"


async def test_async_recognizer_runs_in_executor(ko_model_path, speech_cache):
    x = ts.pcm16(ts.espeak("감사합니다", 16000, cache_dir=speech_cache))
    rec = AsyncRecognizer(Recognizer(load_model(ko_model_path), 16000))
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    ev = await rec.accept(x)
    ev += await rec.finish()
    task.cancel()
    assert ev and ev[0].details["text"]
    assert ticks > 3  # the loop kept running while Vosk decoded
