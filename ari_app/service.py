"""The Ringpool service: storage, the ARI connection and the call manager, wired together.

It knows nothing of HTTP; the admin API reads its status through ``status()``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, replace
from typing import Any

from ari_app.admin.live import LiveFeed, watch_calls
from ari_app.ari import AriClient
from ari_app.call_manager import CallManager
from ari_app.config import Settings
from ari_app.metrics import CallMetrics
from ari_app.metrics import pool_lines
from ari_app.metrics import render as render_metrics
from ari_app.outbox.enqueue import enqueue_call_event
from ari_app.outbox.model import Sink
from ari_app.outbox.worker import OutboxWorker
from ari_app.secrets_store import load_or_create_secret
from ari_app.screening.service import ScreeningService
from ari_app.tracking.service import TrackingService
from dialplan.destinations import dial_string
from storage.async_store import AsyncCallStore

log = logging.getLogger(__name__)


class RingpoolService:
    def __init__(self, settings: Settings, *, ari_password: str) -> None:
        self.settings = settings
        self.ari_password = ari_password
        self.store = AsyncCallStore(settings.database)
        self.client: AriClient | None = None
        self.manager: CallManager | None = None
        self.tracking = TrackingService(settings, self.store)
        self.screening = ScreeningService(settings, self.store)
        self.sinks = outbox_sinks(settings)
        self.outbox = OutboxWorker(lambda fn: self.store.run(fn, self.store.db), self.sinks)
        self.live = LiveFeed()  # call milestones for the dashboard (GET /api/v1/live)
        self._stopping = False
        self._publishing = False  # call milestones go to the outbox (once a webhook is configured)

    async def start(self) -> None:
        await self.store.open()
        watch_calls(self.store.store, self.live)  # publishes each milestone; never fails the write
        await self.store.call("sync_catalog", *catalog_rows(self.settings))
        await self.tracking.start()
        await self.screening.start(self.tracking.attribution)
        if self.sinks:
            self._publish_milestones()
            await self.outbox.start()
        ari = self.settings.ari
        self.client = AriClient(ari.url, ari.username, self.ari_password, ari.app,
                                on_event=self._on_event, on_connected=self._on_connected,
                                on_disconnected=self._on_disconnected, start_events=False)
        await self.client.__aenter__()
        self.manager = CallManager(self.client.rest, self.store, self.settings, self.tracking, self.screening)
        await self.manager.start()
        self.client.events.start()
        log.info("ARI app %r connecting to %s", ari.app, ari.url)

    def _on_event(self, event: dict[str, Any]) -> None:
        assert self.manager is not None
        self.manager.on_event(event)

    async def _on_connected(self) -> None:
        assert self.manager is not None and self.client is not None
        log.info("ARI events connected (reconnects so far: %d); reconciling", self.client.events.reconnects)
        await self.manager.reconcile()

    async def _on_disconnected(self) -> None:
        if self._stopping:
            return
        log.warning("ARI events disconnected; calls keep running in Asterisk, reconnecting")

    def click_to_call(self, campaign: str, number: object, session_id: str | None = None) -> str:
        """The admin API's click-to-call: the call manager places it (raises ClickToCallRefused)."""
        if self.manager is None:
            raise ValueError("not started")
        return self.manager.click_to_call(campaign, number, session_id)

    async def wait_connected(self, timeout: float) -> bool:
        assert self.client is not None
        return await self.client.events.wait_connected(timeout)

    async def status(self) -> dict[str, Any]:
        events = self.client.events if self.client else None
        return {
            "ari_connected": bool(events and events.connected),
            "ari_reconnects": events.reconnects if events else 0,
            "ari_last_error": events.last_error if events else None,
            "database_ok": await self.store.healthy(),
            "active_calls": self.manager.active_calls if self.manager else 0,
        }

    async def metrics(self) -> str:
        """The Prometheus text for /metrics."""
        hub = self.manager.hub.hub.stats if self.manager else None
        return render_metrics(
            status=await self.status(),
            calls_by_disposition=await self.store.call("counts_by", "disposition"),
            decisions=await self.store.call("counts_by", "decision"),
            metrics=self.manager.metrics if self.manager else CallMetrics(),
            detector_streams=hub.streams if hub else 0, detector_cpu_s=hub.cpu_s if hub else 0.0,
            extra=[*pool_lines(await self.tracking.pools_status(), self.tracking.leases_granted,
                               self.tracking.overflow_handouts),
                   *(await self.outbox.metrics_snapshot()).prometheus_lines()])

    async def apply_settings(self, new: Settings) -> None:
        """A changed configuration, live: calls in progress keep the campaign and plan they have; every new
        decision reads ``new``. What only a restart can change is refused before this (config_reload)."""
        self.settings = new
        await self.store.call("sync_catalog", *catalog_rows(new))
        await self.tracking.apply(new)
        self.screening.settings = new
        self.sinks = outbox_sinks(new)
        self.outbox.sinks = dict(self.sinks)
        if self.sinks and not self._publishing:
            self._publish_milestones()
            await self.outbox.start()
        if self.manager is not None:
            self.manager.apply(new)
        log.info("configuration applied: %d campaigns, %d destinations, %d flows", len(new.campaigns),
                 len(new.destinations), len(new.flows))

    def _publish_milestones(self) -> None:
        """Queue each call milestone for the webhooks in the same transaction as the milestone itself."""
        self._publishing = True
        loop = asyncio.get_running_loop()
        calls = self.store.store
        assert calls is not None

        def observe(event: str, call_id: str) -> None:  # on the storage thread
            call = calls.call_row(call_id)
            if call is not None and enqueue_call_event(calls.db, self.sinks, event, call):
                loop.call_soon_threadsafe(self.outbox.wake)

        calls.observers.append(observe)

    async def stop(self) -> None:
        self._stopping = True
        if self.manager:
            await self.manager.shutdown()
        if self.client:
            await self.client.close()
        await self.tracking.stop()
        await self.screening.stop()
        await self.outbox.stop()
        await self.store.close()


def catalog_rows(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    destinations = [{"name": d.name, "kind": d.kind, "dial_string": dial_string(d, settings.trunks)}
                    for d in settings.destinations.values()]
    campaigns = [{"name": c.name, "title": c.title, "destination": c.destination, "greeting": c.greeting,
                  "ring_timeout": c.ring_timeout, "fallback_destination": c.fallback.destination,
                  "fallback_message": c.fallback.message} for c in settings.campaigns.values()]
    # pool, overflow and extension numbers are kept by TrackingStore.sync, which knows their states
    numbers = [asdict(n) for n in settings.numbers.values() if n.role == "static"]
    return destinations, campaigns, numbers


def outbox_sinks(settings: Settings) -> dict[str, Sink]:
    """The configured webhooks; a webhook without a secret gets one generated on first run (never unsigned)."""
    return {name: replace(sink, secret=load_or_create_secret(settings.state_dir, f"webhook-secret-{name}"))
            if sink.kind == "webhook" and not sink.secret else sink
            for name, sink in settings.webhooks.items()}
