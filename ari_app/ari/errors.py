"""Typed ARI errors.

Call-handling code has to react differently to "the channel is already gone" (404, a
normal race when the caller hangs up), "wrong state" (409, e.g. answering a channel
that is not in Stasis) and "Asterisk is unreachable" (retry later / reconcile). Typed
exceptions let callers write ``except AriNotFound`` instead of parsing status codes.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AriError",
    "AriHttpError",
    "AriBadRequest",
    "AriNotFound",
    "AriConflict",
    "AriUnprocessable",
    "AriServerError",
    "AriTimeout",
    "AriConnectionError",
    "http_error",
    "extract_message",
]


class AriError(Exception):
    """Base class of every error raised by the ARI client."""


class AriHttpError(AriError):
    """Asterisk answered with a non-2xx HTTP status.

    ``message`` is Asterisk's own explanation (its JSON ``{"message": ...}`` body) when
    present, because that text ("Channel not found", "Channel not in Stasis
    application") is what an operator needs in the log.
    """

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"{method} {path} -> HTTP {status}: {message}")


class AriBadRequest(AriHttpError):
    """400: a required parameter is missing or malformed."""


class AriNotFound(AriHttpError):
    """404: channel/bridge/playback/variable does not exist (often: already hung up)."""


class AriConflict(AriHttpError):
    """409: the resource is in the wrong state (e.g. channel not in Stasis)."""


class AriUnprocessable(AriHttpError):
    """422: the request is well formed but refers to something unusable (e.g. bad endpoint)."""


class AriServerError(AriHttpError):
    """5xx: Asterisk failed internally (e.g. allocation failure while originating)."""


class AriTimeout(AriError, TimeoutError):
    """No answer within the per-request timeout.

    Also a ``TimeoutError`` so generic timeout handling keeps working.
    """

    def __init__(self, method: str, path: str, timeout: float) -> None:
        self.method = method
        self.path = path
        self.timeout = timeout
        super().__init__(f"{method} {path} timed out after {timeout:g} s")


class AriConnectionError(AriError, ConnectionError):
    """The HTTP connection could not be made or was broken (refused, reset, closed).

    Usually means Asterisk is down or restarting; also a ``ConnectionError``.
    """

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(f"{method} {path} failed: {reason}")


_BY_STATUS: dict[int, type[AriHttpError]] = {
    400: AriBadRequest,
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
}


def extract_message(body: bytes | str, fallback: str) -> str:
    """Return Asterisk's ``message`` field from an error body, else the raw text, else ``fallback``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        return fallback
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return text[:500]


def http_error(status: int, method: str, path: str, message: str) -> AriHttpError:
    """Build the most specific :class:`AriHttpError` subclass for ``status``."""
    if status >= 500:
        cls: type[AriHttpError] = AriServerError
    else:
        cls = _BY_STATUS.get(status, AriHttpError)
    return cls(status, method, path, message)
