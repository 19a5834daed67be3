"""Ringpool's own asyncio ARI client (Asterisk 22) on aiohttp.

``AriRest`` for REST calls with typed errors, ``AriEventStream`` for the self-healing
events WebSocket, ``AriClient`` bundling both over one session.
"""

from .client import AriClient
from .errors import (
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    AriUnprocessable,
)
from .events import AriEventStream, EventCallback, HookCallback
from .rest import AriRest

__all__ = [
    "AriClient",
    "AriRest",
    "AriEventStream",
    "EventCallback",
    "HookCallback",
    "AriError",
    "AriHttpError",
    "AriBadRequest",
    "AriNotFound",
    "AriConflict",
    "AriUnprocessable",
    "AriServerError",
    "AriTimeout",
    "AriConnectionError",
]
