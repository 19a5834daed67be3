"""`ringpool run`: optionally start the bundled Asterisk, then the service and the admin API, until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from ari_app.accounts import AccountManager
from ari_app.accounts.model import ACCOUNTS_CONF, opus_module_present
from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.asterisk_config import render_all
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed
from ari_app.config import Settings
from ari_app.config_reload import ConfigReloader
from ari_app.secrets_store import load_or_create_secret, secret_path
from ari_app.security_watch import SecurityWatch
from ari_app.service import RingpoolService

log = logging.getLogger(__name__)


def ari_password(settings: Settings) -> str:
    return settings.ari.password or load_or_create_secret(settings.state_dir, "ari-password")


def admin_token(settings: Settings) -> str:
    return settings.admin.token or load_or_create_secret(settings.state_dir, "admin-token")


async def start_bundled_asterisk(settings: Settings, password: str, root: Path | None = None,
                                 accounts: AccountManager | None = None) -> BundledAsterisk:
    root = root or default_root()
    await asyncio.get_running_loop().run_in_executor(None, ensure_installed, root)
    run_dir = settings.state_dir / "asterisk"
    asterisk = BundledAsterisk(root, run_dir, http_port=settings.asterisk.http_port,
                               ari_user=settings.ari.username, ari_password=password)
    # test accounts from the configuration and the database, and current bans, from the first start
    accounts_conf = await accounts.render() if accounts else None
    asterisk.write_config(render_all(settings, root=root, run_dir=run_dir, ari_password=password,
                                     accounts_conf=accounts_conf))
    (run_dir / "etc" / ACCOUNTS_CONF).chmod(0o600)  # password digests
    await asterisk.start()
    return asterisk


async def _opus_running(service: RingpoolService) -> bool:
    """Whether the Asterisk in use runs the Opus codec (test accounts then offer it)."""
    if service.client is None:
        return False
    try:
        info = await service.client.rest.request("GET", "/asterisk/modules/codec_opus_open_source.so")
        return str((info or {}).get("status", "")).lower() == "running"
    except Exception:
        return False


async def run(settings: Settings) -> None:
    password = ari_password(settings)
    token = admin_token(settings)
    service = RingpoolService(settings, ari_password=password)

    async def reload_pjsip() -> None:
        assert service.client is not None
        await service.client.rest.request("PUT", "/asterisk/modules/res_pjsip.so", timeout=15)

    opus: bool | object
    if settings.asterisk.bundled:
        opus = opus_module_present(default_root())
    else:
        opus = lambda: _opus_running(service)  # noqa: E731
    accounts = AccountManager(settings, reload=reload_pjsip, opus=opus)  # type: ignore[arg-type]
    await accounts.open()
    watch = SecurityWatch(settings, accounts)
    asterisk = (await start_bundled_asterisk(settings, password, accounts=accounts)
                if settings.asterisk.bundled else None)
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        if not settings.asterisk.bundled:
            # an external Asterisk reads the accounts file we write (#include it in pjsip.conf): bring it up to date
            await accounts.apply()
        watch.start()

        async def apply_pjsip(new: Settings) -> None:
            """The bundled Asterisk: endpoints for destinations and trunks as configured now, then a reload."""
            assert asterisk is not None
            files = render_all(new, root=asterisk.root, run_dir=asterisk.run_dir, ari_password=password,
                               accounts_conf=await accounts.render())
            await loop.run_in_executor(None, _write_whole, asterisk.run_dir / "etc" / "pjsip.conf",
                                       files["pjsip.conf"])
            await reload_pjsip()

        reloader = ConfigReloader(settings.path, service, apply_pjsip if asterisk is not None else None)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_on_signal(reloader)))
        runner = web.AppRunner(build_admin_app(AdminDeps(store=service.store, token=token, status=service.status,
                                                         accounts=accounts, metrics=service.metrics,
                                                         tracking=service.tracking, live=service.live,
                                                         screening=service.screening, settings=settings,
                                                         click_to_call=service.click_to_call,
                                                         reloader=reloader)),
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
        await watch.stop()
        await service.stop()
        await accounts.close()
        if asterisk:
            await asterisk.stop()


async def _reload_on_signal(reloader: ConfigReloader) -> None:
    """SIGHUP: read the configuration again; a file that does not load changes nothing (and says why)."""
    try:
        applied = await reloader.reload()
        log.info("configuration reloaded on SIGHUP: %s", applied.as_dict())
    except Exception as exc:
        log.error("configuration not reloaded: %s", exc)


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
        f"  Test accounts: {', '.join(settings.test_accounts) or 'none configured'} "
        f"(softphones register at sip:{ast.sip_bind}:{ast.sip_port}; docs/softphones.md)",
        f"  Admin API:  http://{settings.admin.bind}:{settings.admin.port}/api/v1/calls  (GET /healthz needs no token)",
        f"  Token:      {token_file}",
        f"  Try a call: make call NUMBER={example}   (SIPp from 127.0.0.1; a demo desk answers on 127.0.0.1:5080)",
        "  Stop:       Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)
