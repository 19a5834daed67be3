"""Run CallStore methods on one dedicated thread: SQLite stays off the event loop, and writes from every
call task are serialised in arrival order, so a call's events are stored in the order they happened."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from storage.calls import CallStore
from storage.db import open_database

T = TypeVar("T")


class AsyncCallStore:
    def __init__(self, path: Path | str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._path = path
        self.store: CallStore | None = None

    async def open(self) -> None:
        db = await self._submit(open_database, self._path)
        self.store = CallStore(db)

    async def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

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
