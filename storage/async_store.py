"""Run CallStore methods on one dedicated thread: SQLite stays off the event loop, and writes from every
call task are serialised in arrival order, so a call's events are stored in the order they happened."""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import sqlite_utils

from storage.calls import CallStore
from storage.db import open_database

T = TypeVar("T")
log = logging.getLogger(__name__)


def _log_failure(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("queued database write failed", exc_info=future.exception())


class AsyncCallStore:
    def __init__(self, path: Path | str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._path = path
        self.store: CallStore | None = None

    async def open(self) -> None:
        db = await self._submit(open_database, self._path)
        self.store = CallStore(db)

    @property
    def db(self) -> sqlite_utils.Database:
        assert self.store is not None, "AsyncCallStore.open() first"
        return self.store.db

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any function on the storage thread (e.g. an OutboxStore method), in order with the writes."""
        return await self._submit(fn, *args, **kwargs)

    async def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def submit(self, method: str, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
        """Queue a write without waiting for it. Writes run in submission order on the one thread, so a
        later awaited call (e.g. finishing the record) returns only after every earlier one is done."""
        assert self.store is not None, "AsyncCallStore.open() first"
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(getattr(self.store, method), *args, **kwargs))
        future.add_done_callback(_log_failure)
        return future

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``await store.call("update_call", call_id, state="bridged")``"""
        assert self.store is not None, "AsyncCallStore.open() first"
        return await self._submit(getattr(self.store, method), *args, **kwargs)

    async def healthy(self) -> bool:
        try:
            await self._submit(lambda: self.store.db.execute("SELECT 1").fetchone())
            return True
        except Exception:
            return False

    async def close(self) -> None:
        if self.store is not None:
            await self._submit(self.store.db.conn.close)
        self._executor.shutdown(wait=True)
