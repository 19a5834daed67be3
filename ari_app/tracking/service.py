"""Pools, visitor sessions and call attribution as a service: what the web layer and the call flow use.

Knows nothing of HTTP or ARI. All SQL runs on the storage thread through AsyncCallStore.run, in order with
the call records' writes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from ari_app.config import Settings
from ari_app.secrets_store import load_or_create_secret
from ari_app.tracking.attribution import Arrival, Attribution, CallAttribution
from ari_app.tracking.model import Pool
from ari_app.tracking.store import Lease, TrackingStore, Visit
from ivr.prompts import asterisk_sound, render_wav
from storage.async_store import AsyncCallStore
from storage.db import utcnow

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0  # seconds between releases of inactive leases
EXTENSION_TEXT = "If you have an extension, please enter it now."


def format_display(number: str) -> str:
    """How a number is shown on a page: NANP numbers as (555) 010-0001, others as +<digits>."""
    if len(number) == 11 and number.startswith("1"):
        number = number[1:]
    if len(number) == 10:
        return f"({number[:3]}) {number[3:6]}-{number[6:]}"
    return "+" + number


def lease_answer(pool: Pool, lease: Lease, token: str) -> dict[str, Any]:
    """The public answer for a lease (docs/attribution.md): never another session's data."""
    display = format_display(lease.number) if lease.number else None
    tel = f"tel:+{lease.number}" if lease.number else None
    if lease.extension:
        display = f"{display} ext. {lease.extension}"
        tel = f"{tel},{lease.extension}"
    return {"token": token, "number": "+" + lease.number if lease.number else None, "display": display, "tel": tel,
            "extension": lease.extension, "ttl": pool.lease_ttl, "renew_every": pool.renew_every,
            "overflow": lease.overflow}


class TrackingService:
    def __init__(self, settings: Settings, store: AsyncCallStore) -> None:
        self.settings = settings
        self.pools: dict[str, Pool] = dict(settings.pools)
        self.store = store
        self.site_keys = {name: pool.site_key or load_or_create_secret(settings.state_dir, f"site-key-{name}",
                                                                       nbytes=18)
                          for name, pool in self.pools.items()}
        self._tracking: TrackingStore | None = None
        self._attribution: CallAttribution | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._prompt_task: asyncio.Task[None] | None = None
        self.overflow_handouts = 0  # for /metrics
        self.leases_granted = 0
        self.extension_prompt = "extension"  # Asterisk's own word until the spoken prompt is rendered

    async def start(self) -> None:
        """After the store is open and the catalogue synced."""
        self._tracking = TrackingStore(self.store.db, self.pools)
        self._attribution = CallAttribution(self.store.db, self.pools)
        await self.store.run(self._tracking.sync, self.pools, self.settings.inventory, utcnow())
        self._sweeper = asyncio.create_task(self._sweep(), name="lease-sweeper")
        if any(p.mode == "extension" for p in self.pools.values()):
            self._prompt_task = asyncio.create_task(self._render_prompt(), name="extension-prompt")

    async def apply(self, settings: Settings) -> None:
        """A changed configuration: the same pool objects' mapping is updated in place (the stores hold it),
        then numbers are synced (added ones join, removed ones retire; leases in use are kept)."""
        self.settings = settings
        self.pools.clear()
        self.pools.update(settings.pools)
        for name, pool in self.pools.items():
            if name not in self.site_keys:
                self.site_keys[name] = pool.site_key or load_or_create_secret(settings.state_dir, f"site-key-{name}",
                                                                             nbytes=18)
        if self._tracking is not None:
            await self.store.run(self._tracking.sync, self.pools, settings.inventory, utcnow())

    async def _render_prompt(self) -> None:
        """In the background (espeak-ng takes a moment): calls use Asterisk's own word until it is ready."""
        try:
            wav = await asyncio.get_running_loop().run_in_executor(
                None, render_wav, EXTENSION_TEXT, self.settings.state_dir / "prompts")
            self.extension_prompt = asterisk_sound(wav)
        except Exception as exc:  # espeak-ng missing: the call still works with the short prompt
            log.warning("cannot render the extension prompt (%s); using Asterisk's 'extension'", exc)

    async def stop(self) -> None:
        for task in (self._sweeper, self._prompt_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @property
    def attribution(self) -> CallAttribution:
        assert self._attribution is not None, "TrackingService.start() first"
        return self._attribution

    @property
    def tracking(self) -> TrackingStore:
        assert self._tracking is not None, "TrackingService.start() first"
        return self._tracking

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                released = await self.store.run(self.tracking.release_inactive, utcnow())
                if released:
                    log.info("released %d inactive lease(s)", released)
            except Exception:
                log.exception("releasing inactive leases failed")

    # --- the web side --------------------------------------------------------------------------------------

    def check_site_key(self, pool_name: str, key: str) -> Pool | None:
        pool = self.pools.get(pool_name)
        expected = self.site_keys.get(pool_name)
        if pool is None or expected is None or not secrets.compare_digest(key.encode(), expected.encode()):
            return None
        return pool

    async def visit(self, pool: Pool, visit: Visit, token: str | None) -> dict[str, Any]:
        lease, token = await self.store.run(self.tracking.visit, pool, visit, utcnow(), token=token,
                                            new_token="s_" + secrets.token_urlsafe(24),
                                            new_session_id="vs_" + secrets.token_hex(8))
        self.leases_granted += 1
        if lease.overflow:
            self.overflow_handouts += 1
        return lease_answer(pool, lease, token)

    async def click(self, pool: Pool, token: str, element: str | None) -> bool:
        return await self.store.run(self.tracking.click, pool, token, element, utcnow())

    # --- the call side -------------------------------------------------------------------------------------

    async def arrive(self, call_id: str, dialed: str | None, caller: str | None) -> Arrival:
        assert self._attribution is not None
        return await self.store.run(self._attribution.arrive, call_id, dialed, caller, utcnow())

    async def enter_extension(self, call_id: str, pool_name: str, extension: str) -> Attribution | None:
        assert self._attribution is not None
        pool = self.pools.get(pool_name)
        if pool is None:
            return None
        return await self.store.run(self._attribution.enter_extension, call_id, pool, extension, utcnow())

    async def release_extension(self, pool_name: str, extension: str) -> None:
        await self.store.run(self.tracking.release_extension, pool_name, extension)

    # --- reading -------------------------------------------------------------------------------------------

    async def pools_status(self) -> list[dict[str, Any]]:
        return [await self.store.run(self.tracking.pool_status, pool) for pool in self.pools.values()]

    async def pool_status(self, name: str) -> dict[str, Any] | None:
        pool = self.pools.get(name)
        if pool is None:
            return None
        status = await self.store.run(self.tracking.pool_status, pool)
        status["numbers_detail"] = await self.store.run(self.tracking.numbers, name)
        return status
