"""Logging for the service: plain text or one JSON object per line, with the call id on every record.

``call_id_var`` holds the id of the call the current task works for. The call manager sets it at the start of
each call's task; asyncio copies the context into every task, so it stays per call, and tasks a call starts
inherit it. Code outside a call leaves it empty.

JSON lines carry ``ts`` (UTC, milliseconds, ``Z``), ``level``, ``logger``, ``msg``, ``call_id``, ``exc`` (the
formatted traceback, only when there is one) and every field given with ``extra={...}``; an extra field whose
name is one of those is written as ``extra_<name>`` rather than replacing it. Output is ASCII (anything else
is escaped), so one record is always exactly one line.
"""

from __future__ import annotations

import contextvars
import json as _json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("ringpool_call_id", default="")

# Attributes every LogRecord has (plus those the formatters add): the rest came from ``extra``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "call_id", "taskName"}
_CORE_KEYS = ("ts", "level", "logger", "msg", "call_id", "exc")
_HANDLER_NAME = "ringpool"


class CallIdFilter(logging.Filter):
    """Puts ``call_id`` on every record: the current call's id, or "" outside a call. A ``call_id`` passed
    explicitly in ``extra`` is kept (code that works for a call from outside its task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_id", None):
            record.call_id = call_id_var.get()
        return True


def _iso_ms(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    try:
        _json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value) if not isinstance(value, (str, bytes)) else str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "call_id": str(getattr(record, "call_id", None) or call_id_var.get()),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_"):
                continue
            entry[f"extra_{key}" if key in _CORE_KEYS or key == "stack" else key] = _jsonable(value)
        return _json.dumps(entry, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """``2026-01-31 12:00:00,123 INFO ari_app.inbound_call [3f2a...]: message`` (no brackets outside a call)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(call_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        call_id = getattr(record, "call_id", None) or call_id_var.get()
        record.call_tag = f" [{call_id}]" if call_id else ""
        try:
            return super().format(record)
        finally:
            del record.call_tag  # not an ``extra`` field for other handlers


def configure_logging(level: str | int = "INFO", json: bool = False, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as text or JSON lines; replaces an earlier call's handler.

    Raises ValueError for an unknown level name.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        level = resolved
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler
