"""`ringpool run`: optionally start the bundled Asterisk, then the service and the admin API, until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.asterisk_config import render_all
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed
from ari_app.config import Settings
from ari_app.secrets_store import load_or_create_secret, secret_path
from ari_app.service import RingpoolService

log = logging.getLogger(__name__)


def ari_password(settings: Settings) -> str:
    return settings.ari.password or load_or_create_secret(settings.state_dir, "ari-password")


def admin_token(settings: Settings) -> str:
    return settings.admin.token or load_or_create_secret(settings.state_dir, "admin-token")


async def start_bundled_asterisk(settings: Settings, password: str, root: Path | None = None) -> BundledAsterisk:
    root = root or default_root()
    await asyncio.get_running_loop().run_in_executor(None, ensure_installed, root)
    run_dir = settings.state_dir / "asterisk"
    asterisk = BundledAsterisk(root, run_dir, http_port=settings.asterisk.http_port,
                               ari_user=settings.ari.username, ari_password=password)
    asterisk.write_config(render_all(settings, root=root, run_dir=run_dir, ari_password=password))
    await asterisk.start()
    return asterisk


async def run(settings: Settings) -> None:
    password = ari_password(settings)
    token = admin_token(settings)
    asterisk = await start_bundled_asterisk(settings, password) if settings.asterisk.bundled else None
    service = RingpoolService(settings, ari_password=password)
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        runner = web.AppRunner(build_admin_app(AdminDeps(store=service.store, token=token, status=service.status)),
                               access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.admin.bind, settings.admin.port).start()
        connected = await service.wait_connected(15)
        _banner(settings, asterisk, connected)
        await stop.wait()
        log.info("stopping")
    finally:
        if runner:
            await runner.cleanup()
        await service.stop()
        if asterisk:
            await asterisk.stop()


def _banner(settings: Settings, asterisk: BundledAsterisk | None, connected: bool) -> None:
    ast = settings.asterisk
    example = next(iter(settings.numbers), "<tracking number>")
    token_file = "admin.token in " + str(settings.path) if settings.admin.token else str(
        secret_path(settings.state_dir, "admin-token"))
    lines = [
        "",
        "Ringpool is running." + ("" if connected else " (ARI not connected yet: check the log)"),
        f"  Asterisk:   {'bundled ' + (asterisk.version or '') if asterisk else 'external at ' + settings.ari.url}",
        f"  SIP:        sip:<tracking number>@{ast.sip_bind}:{ast.sip_port}  (only from trunk addresses: "
        + ", ".join(m for t in settings.trunks.values() for m in t.match) + ")",
        f"  Admin API:  http://{settings.admin.bind}:{settings.admin.port}/api/v1/calls  (GET /healthz needs no token)",
        f"  Token:      {token_file}",
        f"  Try a call: make call NUMBER={example}   (SIPp from 127.0.0.1; a demo desk answers on 127.0.0.1:5080)",
        "  Stop:       Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)
