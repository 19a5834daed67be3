"""Run the bundled Asterisk: the Debian-unstable root cached outside the repo, started through the root's
own dynamic loader (no chroot, no mounts), with configuration rendered into a per-run folder.

Not run as -U/-G: as root that drops capabilities and Asterisk can no longer write its own files.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp

log = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO_DIR / "scripts" / "install-asterisk.sh"


class AsteriskStartError(RuntimeError):
    pass


def default_root() -> Path:
    return Path(os.environ.get("RINGPOOL_ASTERISK_ROOT", Path.home() / ".cache/ringpool/asterisk-root"))


def ensure_installed(root: Path) -> None:
    """Build the cached root if it is missing (about a minute with a nearby mirror)."""
    if (root / ".ringpool-complete").exists():
        return
    env = dict(os.environ, RINGPOOL_ASTERISK_ROOT=str(root))
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, env=env)


def required_modules() -> list[str]:
    text = (REPO_DIR / "asterisk-config" / "modules.conf").read_text()
    return re.findall(r"^load\s*=>\s*(\S+)\.so", text, flags=re.M)


def render_hold_music(path: Path) -> None:
    """A soft chime loop for the queue's music on hold, rendered once with sox (8 kHz mono, what Asterisk
    plays without transcoding)."""
    if path.exists():
        return
    tmp = path.with_suffix(".tmp.wav")
    notes = [f"synth 0.45 sine {hz} fade 0.02 0.45 0.3 vol 0.25" for hz in (523, 659, 784, 659)]
    parts = []
    for i, note in enumerate(notes):
        part = path.with_name(f".note{i}.wav")
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(part), *note.split(), "pad", "0", "0.15"],
                       check=True, capture_output=True, timeout=30)
        parts.append(str(part))
    subprocess.run(["sox", *parts, str(tmp), "pad", "0", "1.5", "repeat", "3"], check=True, capture_output=True,
                   timeout=30)
    for part in parts:
        Path(part).unlink()
    tmp.replace(path)


class BundledAsterisk:
    """One Asterisk process with its own run folder; start, stop, kill and CLI commands."""

    def __init__(self, root: Path, run_dir: Path, *, http_port: int, ari_user: str, ari_password: str) -> None:
        self.root = root
        self.run_dir = run_dir
        self.http_port = http_port
        self.ari_user = ari_user
        self.ari_password = ari_password
        self.process: asyncio.subprocess.Process | None = None
        self.version: str | None = None

    def _command(self, *args: str) -> list[str]:
        libs = f"{self.root}/usr/lib/x86_64-linux-gnu:{self.root}/lib/x86_64-linux-gnu"
        return [str(self.root / "lib64/ld-linux-x86-64.so.2"), "--library-path", libs,
                str(self.root / "usr/sbin/asterisk"), "-C", str(self.run_dir / "etc/asterisk.conf"), *args]

    def write_config(self, files: dict[str, str]) -> None:
        etc = self.run_dir / "etc"
        if etc.exists():
            shutil.rmtree(etc)
        for sub in ("etc", "lib", "spool/recording", "run", "log", "cache", "moh"):  # ARI records into spool
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        render_hold_music(self.run_dir / "moh" / "ringpool-hold.wav")
        for name, text in files.items():
            path = etc / name
            path.write_text(text, encoding="utf-8")
            if name in ("ari.conf",):
                path.chmod(0o600)

    async def start(self, timeout: float = 60.0) -> None:
        if self.process and self.process.returncode is None:
            return
        # A stale control socket from a killed run makes the new process refuse to start its console.
        (self.run_dir / "run/asterisk.ctl").unlink(missing_ok=True)
        console = open(self.run_dir / "log/console.log", "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self._command("-f", "-n"), stdin=asyncio.subprocess.DEVNULL, stdout=console,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            console.close()
        try:
            await asyncio.wait_for(self._wait_ready(), timeout)
        except (asyncio.TimeoutError, AsteriskStartError):
            tail = self.log_tail()
            await self.kill()
            raise AsteriskStartError(f"Asterisk did not become ready in {timeout:.0f} s; log tail:\n{tail}")
        await self._check_modules()
        log.info("bundled Asterisk %s ready, ARI on 127.0.0.1:%d", self.version, self.http_port)

    async def _wait_ready(self) -> None:
        auth = base64.b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        url = f"http://127.0.0.1:{self.http_port}/ari/asterisk/info"
        async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as http:
            while True:
                if self.process is None or self.process.returncode is not None:
                    raise AsteriskStartError("Asterisk exited during start")
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            info = await resp.json()
                            self.version = info.get("system", {}).get("version")
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.2)

    async def _check_modules(self) -> None:
        output = await self.cli("module show")
        running = {m.group(1) for m in re.finditer(r"^(\S+)\.so\s+.*\bRunning\b", output, flags=re.M)}
        missing = [name for name in required_modules() if name not in running]
        if missing:
            await self.kill()
            raise AsteriskStartError(f"Asterisk modules not running: {', '.join(missing)}")

    async def cli(self, command: str, timeout: float = 10.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self._command("-rx", command), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            raise
        return out.decode(errors="replace")

    async def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop: hang up calls, unload modules; SIGKILL if it takes too long."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            await self.cli("core stop now", timeout=5)
            await asyncio.wait_for(self.process.wait(), timeout)
        except (asyncio.TimeoutError, OSError):
            await self.kill()

    async def kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        for name in ("log/messages.log", "log/console.log"):
            path = self.run_dir / name
            if path.exists():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"
