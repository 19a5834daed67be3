#!/usr/bin/env python3
"""The server side of bench/leases.py, run as its own process so the load generator never shares its event
loop or its CPU accounting.

``--kind ringpool``: the real admin server (``build_admin_app`` with a ``TrackingService``) started exactly as
``ari_app.runner`` starts it (store opened, catalogue synced, tracking started, ``AppRunner(access_log=None)``),
from the bench configuration given with ``--config``; no ARI, no Asterisk.

``--kind baseline``: a trivial aiohttp server with one POST handler that reads and parses the JSON body and
answers a small JSON object shaped like a lease.

Both listen on 127.0.0.1 on a free port and print ``READY <port>`` on stdout once they accept requests.
SIGTERM/SIGINT stop them cleanly (the store is closed, so the WAL is checkpointed). With ``--cprofile FILE``,
SIGUSR1 starts cProfile on the event loop thread and on the storage thread, SIGUSR2 stops it and writes
``FILE.loop`` and ``FILE.storage`` (pstats files).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


async def baseline_app() -> web.Application:
    async def lease(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if not isinstance(body, dict):
            return web.json_response({"error": "body: expected a JSON object"}, status=400)
        return web.json_response({"token": body.get("token") or "s_baseline0000000000000000000000",
                                  "number": "+15550100201", "display": "(555) 010-0201", "tel": "tel:+15550100201",
                                  "extension": None, "ttl": 1800, "renew_every": 60, "overflow": False})

    app = web.Application()
    app.router.add_post("/t/v1/sessions", lease)
    app.router.add_post("/t/v1/pageview", lease)
    return app


def catalog(settings: Any) -> tuple[list[dict[str, Any]], ...]:
    """``ari_app.service.catalog_rows``, which the app syncs before starting tracking. That module pulls in the
    whole call side (ARI, call manager, screening); if it does not import (say, mid-edit), the same rows are
    built here from the destinations, campaigns and static numbers, and the log says so."""
    try:
        from ari_app.service import catalog_rows
    except ImportError as exc:
        logging.getLogger("bench.leases").warning("ari_app.service does not import (%s); building the catalogue "
                                                  "rows here", exc)
    else:
        return catalog_rows(settings)
    from dataclasses import asdict

    from dialplan.destinations import dial_string

    return ([{"name": d.name, "kind": d.kind, "dial_string": dial_string(d, settings.trunks)}
             for d in settings.destinations.values()],
            [{"name": c.name, "title": c.title, "destination": c.destination, "greeting": c.greeting,
              "ring_timeout": c.ring_timeout, "fallback_destination": c.fallback.destination,
              "fallback_message": c.fallback.message} for c in settings.campaigns.values()],
            [asdict(n) for n in settings.numbers.values() if n.role == "static"])


class Profiler:
    """cProfile on the loop thread and on the storage thread (cProfile only sees the thread that enabled it)."""

    def __init__(self, path: str, store: Any) -> None:
        self.path = path
        self.store = store
        self.loop_prof: cProfile.Profile | None = None
        self.db_prof: cProfile.Profile | None = None

    async def start(self) -> None:
        if self.loop_prof is not None:
            return
        self.loop_prof, self.db_prof = cProfile.Profile(), cProfile.Profile()
        if self.store is not None:
            await self.store.run(self.db_prof.enable)
        self.loop_prof.enable()

    async def stop(self) -> None:
        if self.loop_prof is None:
            return
        self.loop_prof.disable()
        if self.store is not None:
            await self.store.run(self.db_prof.disable)
            self.db_prof.dump_stats(self.path + ".storage")
        self.loop_prof.dump_stats(self.path + ".loop")
        self.loop_prof = self.db_prof = None
        print("PROFILED", flush=True)


async def main_async(args: argparse.Namespace) -> int:
    store = tracking = None
    if args.kind == "ringpool":
        from ari_app.admin.http import AdminDeps, build_admin_app
        from ari_app.config import load_settings
        from ari_app.tracking.service import TrackingService
        from storage.async_store import AsyncCallStore

        settings = load_settings(args.config)
        store = AsyncCallStore(settings.database)
        await store.open()
        await store.call("sync_catalog", *catalog(settings))
        tracking = TrackingService(settings, store)
        await tracking.start()

        async def status() -> dict[str, Any]:
            return {"ari_connected": False, "database_ok": await store.healthy()}

        assert settings.admin.token
        app = build_admin_app(AdminDeps(store=store, token=settings.admin.token, status=status, tracking=tracking))
    else:
        app = await baseline_app()

    runner = web.AppRunner(app, access_log=None)  # as ari_app.runner does
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    profiler = Profiler(args.cprofile, store) if args.cprofile else None
    if profiler:
        loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(profiler.start()))
        loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(profiler.stop()))
    print(f"READY {port}", flush=True)
    try:
        await stop.wait()
    finally:
        if profiler:
            await profiler.stop()
        await runner.cleanup()
        if tracking is not None:
            await tracking.stop()
        if store is not None:
            await store.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("ringpool", "baseline"), required=True)
    parser.add_argument("--config", help="ringpool: the bench YAML configuration")
    parser.add_argument("--cprofile", help="enable cProfile on SIGUSR1/SIGUSR2, writing FILE.loop and FILE.storage")
    args = parser.parse_args()
    if args.kind == "ringpool" and not args.config:
        parser.error("--config is required with --kind ringpool")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
