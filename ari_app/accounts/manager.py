"""Test accounts and bans at run time: list/create/remove, and apply them to Asterisk (rewrite the PJSIP include
file, then reload res_pjsip, which keeps calls up).

Runs its own SQLite connection on its own thread (WAL lets it sit beside the call store's connection).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from ari_app.accounts.model import (AccountError, AccountSpec, configured_specs, generate_password,
                                    password_digest, render_accounts_conf, validate_new_account)
from ari_app.accounts.store import AccountStore
from ari_app.config import Settings
from storage.db import format_time, open_database, parse_time, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


class AccountManager:
    def __init__(self, settings: Settings, *, reload: Callable[[], Awaitable[None]] | None = None,
                 opus: bool | Callable[[], Awaitable[bool]] = False) -> None:
        self.settings = settings
        self._reload = reload
        self._opus = opus
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accounts-db")
        self._store: AccountStore | None = None
        self._configured: list[AccountSpec] | None = None
        self._apply_lock = asyncio.Lock()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def open(self) -> None:
        db = await self._run(open_database, self.settings.database)
        self._store = AccountStore(db)
        # generated passwords of configured accounts live in the state folder's secrets
        self._configured = await self._run(configured_specs, self.settings)

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.conn.close)
            self._store = None
        self._executor.shutdown(wait=True)

    @property
    def store(self) -> AccountStore:
        assert self._store is not None, "AccountManager.open() first"
        return self._store

    # --- accounts ------------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[AccountSpec]:
        return list(self._configured or []) + await self._run(self.store.list_accounts)

    async def create(self, data: Any) -> tuple[AccountSpec, str, bool]:
        """Validate and store a new account; returns (account, password (shown once), applied to Asterisk)."""
        username, password, number, name, headers = validate_new_account(data)
        if username in self.settings.test_accounts:
            raise AccountError("username", f"account {username!r} is defined in {self.settings.path.name}",
                               status=409)
        password = password or generate_password()
        spec = AccountSpec(username=username, password_digest=password_digest(username, password),
                           caller_number=number, caller_name=name, headers=headers, source="api")
        spec = await self._run(self.store.add_account, spec)
        log.info("test account %s created (caller %s)", username, number)
        return spec, password, await self.apply()

    async def remove(self, username: str) -> bool:
        """Remove an API-created account; returns whether Asterisk was updated. KeyError if there is none."""
        if username in self.settings.test_accounts:
            raise AccountError("username", f"account {username!r} is defined in {self.settings.path.name}; "
                                           "remove it there", status=409)
        used = [d.name for d in self.settings.destinations.values() if d.account == username]
        if used:
            raise AccountError("username", f"account {username!r} is the destination {used[0]!r}", status=409)
        if not await self._run(self.store.remove_account, username):
            raise KeyError(username)
        log.info("test account %s removed", username)
        return await self.apply()

    # --- security events and bans --------------------------------------------------------------------------

    async def record_event(self, **fields: Any) -> None:
        await self._run(self.store.add_security_event, **fields)

    async def events(self, **filters: Any) -> list[dict[str, Any]]:
        return await self._run(self.store.list_security_events, **filters)

    async def bans(self) -> list[dict[str, Any]]:
        return await self._run(self.store.list_bans)

    async def ban(self, address: str, *, failures: int, reason: str, seconds: int | None = None) -> bool:
        until = format_time(parse_time(utcnow()) + timedelta(seconds=seconds or self.settings.security.ban_seconds))
        await self._run(self.store.add_ban, address, until=until, failures=failures, reason=reason)
        await self.record_event(at=utcnow(), event="Banned", address=address, account=None, service="ringpool",
                                details={"until": until, "failures": failures, "reason": reason})
        log.warning("banned %s until %s (%s)", address, until, reason)
        return await self.apply()

    async def unban(self, address: str, *, reason: str = "removed") -> bool:
        if not await self._run(self.store.remove_ban, address):
            raise KeyError(address)
        await self.record_event(at=utcnow(), event="Unbanned", address=address, account=None, service="ringpool",
                                details={"reason": reason})
        log.info("ban of %s lifted (%s)", address, reason)
        return await self.apply()

    async def expire_bans(self) -> list[str]:
        expired = await self._run(self.store.expire_bans, utcnow())
        for address in expired:
            await self.record_event(at=utcnow(), event="Unbanned", address=address, account=None,
                                    service="ringpool", details={"reason": "expired"})
            log.info("ban of %s expired", address)
        if expired:
            await self.apply()
        return expired

    # --- Asterisk ----------------------------------------------------------------------------------------

    async def render(self) -> str:
        opus = self._opus if isinstance(self._opus, bool) else await self._opus()
        bans = [b["address"] for b in await self.bans()]
        return render_accounts_conf(await self.list_accounts(), bans, opus=opus)

    async def apply(self) -> bool:
        """Rewrite the accounts file and reload PJSIP; False when there is nowhere to write or reload fails."""
        path = self.settings.asterisk.accounts_file
        async with self._apply_lock:
            text = await self.render()
            if path is None:
                log.warning("asterisk.accounts_file is not set: test accounts and bans are stored but not applied")
                return False
            await self._run(_write_atomic, path, text)
            if self._reload is None:
                return False
            try:
                await self._reload()
            except Exception as exc:  # Asterisk down: applied at its next start (it reads the file)
                log.warning("PJSIP reload failed (%s); the file is written and read at Asterisk's next start", exc)
                return False
        return True


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds password digests
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
