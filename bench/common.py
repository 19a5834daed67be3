"""What the benchmark scripts share: a timestamped log, an address check, and the driver that runs a
benchmark in its own temporary folder and stops everything it started on Ctrl-C."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Awaitable, Callable


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def can_bind(kind: int, host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def run_in_temp_folder(main_async: Callable[[Path], Awaitable[int]], *, prefix: str, keep: bool) -> int:
    """Run ``main_async(folder)``; SIGINT/SIGTERM cancel it (its own cleanup runs), the folder is removed
    unless ``keep``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    log(f"working folder {tmp}")
    loop = asyncio.new_event_loop()
    task = loop.create_task(main_async(tmp))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        log("interrupted; everything started was stopped")
        return 130
    finally:
        loop.close()
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)
