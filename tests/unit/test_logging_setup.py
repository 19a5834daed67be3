"""ari_app.logging_setup: JSON lines, the call id on every record (per task), text format, the CLI switch."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
from typing import Any, Iterator

import pytest

from ari_app import cli
from ari_app.logging_setup import call_id_var, configure_logging

TS_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def capture(json_format: bool, level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, json=json_format, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_line_shape(restore_logging: None) -> None:
    stream = capture(True)
    logging.getLogger("ringpool.test").info("call %s took %d ms", "abc", 12, extra={"campaign": "spring", "ms": 12})
    (entry,) = lines(stream)
    assert TS_RE.match(entry["ts"]), entry["ts"]
    assert entry["level"] == "INFO" and entry["logger"] == "ringpool.test"
    assert entry["msg"] == "call abc took 12 ms"
    assert entry["call_id"] == "" and "exc" not in entry
    assert entry["campaign"] == "spring" and entry["ms"] == 12
    # nothing of the LogRecord's own attributes leaks in
    assert set(entry) == {"ts", "level", "logger", "msg", "call_id", "campaign", "ms"}


def test_extra_fields_never_replace_core_fields_and_odd_values_serialise(restore_logging: None) -> None:
    stream = capture(True)
    logging.getLogger("x").warning("m", extra={"level": "fake", "ts": 1, "obj": object(), "tags": ["a", 1]})
    (entry,) = lines(stream)
    assert entry["level"] == "WARNING" and entry["extra_level"] == "fake" and entry["extra_ts"] == 1
    assert entry["obj"].startswith("<object object") and entry["tags"] == ["a", 1]


def test_level_filtering_and_unknown_level(restore_logging: None) -> None:
    stream = capture(True, level="warning")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").error("shown")
    assert [e["msg"] for e in lines(stream)] == ["shown"]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD", json=True)


def test_configure_twice_keeps_one_handler(restore_logging: None) -> None:
    first = capture(False)
    second = capture(True)
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert [e["msg"] for e in lines(second)] == ["once"]


def test_exceptions_are_serialised_on_one_line(restore_logging: None) -> None:
    stream = capture(True)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    text = stream.getvalue()
    assert text.count("\n") == 1
    (entry,) = lines(stream)
    assert entry["msg"] == "failed" and entry["level"] == "ERROR"
    assert entry["exc"].startswith("Traceback") and "RuntimeError: boom\nsecond line" in entry["exc"]


def test_odd_characters_are_escaped(restore_logging: None) -> None:
    stream = capture(True)
    nasty = 'quote " backslash \\ newline \n cr \r tab \t nul \x00 esc \x1b[31m line-sep \u2028 é 日本 \ud800'
    logging.getLogger("x").info("%s", nasty, extra={"caller_name": nasty})
    text = stream.getvalue()
    assert text.isascii() and text.count("\n") == 1 and "\r" not in text and "\x1b" not in text
    (entry,) = lines(stream)
    assert entry["msg"] == nasty and entry["caller_name"] == nasty


async def test_call_id_is_isolated_between_concurrent_tasks(restore_logging: None) -> None:
    stream = capture(True)
    log = logging.getLogger("ringpool.call")
    both_started = asyncio.Barrier(2)

    async def call(call_id: str) -> None:
        call_id_var.set(call_id)
        log.info("start")
        await both_started.wait()  # interleave: each task logs while the other has its id set
        await asyncio.sleep(0)

        async def child() -> None:  # tasks a call starts inherit its id
            log.info("child")

        await asyncio.create_task(child())
        log.info("end")

    await asyncio.gather(call("call-a"), call("call-b"))
    log.info("outside")
    entries = lines(stream)
    by_call: dict[str, list[str]] = {}
    for entry in entries:
        by_call.setdefault(entry["call_id"], []).append(entry["msg"])
    assert by_call == {"call-a": ["start", "child", "end"], "call-b": ["start", "child", "end"], "": ["outside"]}
    assert call_id_var.get() == ""


async def test_a_context_copy_like_the_call_manager_makes(restore_logging: None) -> None:
    """CallManager._spawn sets the id in a copied context given to create_task: the creator's context is untouched."""
    stream = capture(True)
    log = logging.getLogger("ringpool.call")

    async def run() -> None:
        log.info("in call")

    context = contextvars.copy_context()
    context.run(call_id_var.set, "c-1")
    await asyncio.create_task(run(), context=context)
    log.info("manager")
    assert [(e["call_id"], e["msg"]) for e in lines(stream)] == [("c-1", "in call"), ("", "manager")]


def test_explicit_call_id_in_extra_is_kept(restore_logging: None) -> None:
    stream = capture(True)
    token = call_id_var.set("current")
    try:
        logging.getLogger("x").info("for another call", extra={"call_id": "other"})
        logging.getLogger("x").info("for this one")
    finally:
        call_id_var.reset(token)
    assert [e["call_id"] for e in lines(stream)] == ["other", "current"]


def test_text_format_shows_the_call_id_only_when_set(restore_logging: None) -> None:
    stream = capture(False)
    log = logging.getLogger("ringpool.text")
    log.info("no call")
    token = call_id_var.set("abc123")
    try:
        log.info("in a call")
    finally:
        call_id_var.reset(token)
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" INFO ringpool.text: no call") and "[" not in first
    assert second.endswith(" INFO ringpool.text [abc123]: in a call")


def test_cli_log_format_switch(restore_logging: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                               capsys: pytest.CaptureFixture[str]) -> None:
    # check-config on a missing file: logging is configured before the configuration is read
    missing = str(tmp_path / "none.yaml")
    monkeypatch.setenv("RINGPOOL_LOG_FORMAT", "json")
    assert cli.main(["--config", missing, "check-config"]) == 2
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "ringpool")
    assert type(handler.formatter).__name__ == "JsonFormatter"
    assert cli.main(["--config", missing, "--log-format", "text", "check-config"]) == 2
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "ringpool")
    assert type(handler.formatter).__name__ == "TextFormatter"
    monkeypatch.setenv("RINGPOOL_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as info:
        cli.main(["--config", missing, "check-config"])
    assert info.value.code == 2 and "RINGPOOL_LOG_FORMAT" in capsys.readouterr().err
    monkeypatch.delenv("RINGPOOL_LOG_FORMAT")
    with pytest.raises(SystemExit):
        cli.main(["--config", missing, "--log-level", "LOUD", "check-config"])
