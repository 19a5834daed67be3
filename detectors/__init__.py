"""Streaming media detectors: DTMF, fax/modem and call-progress tones, VAD,
answering-machine detection, Vosk speech and keyword rules.

Live calls use `DetectorPipeline` (one per call); bulk work uses `StreamBank`.
"""
from .amd import AMDParams
from .bank import DetectorConfig, StreamBank
from .dtmf import DTMFConfig
from .events import Event
from .keywords import KeywordRule, KeywordSpotter, KeywordSyntaxError
from .pipeline import Detector, DetectorPipeline
from .tones import ToneConfig
from .vad import VADConfig

__all__ = [
    "AMDParams", "Detector", "DetectorConfig", "DetectorPipeline", "DTMFConfig", "Event",
    "KeywordRule", "KeywordSpotter", "KeywordSyntaxError", "StreamBank", "ToneConfig", "VADConfig",
]
