"""Test calls with a real SIP softphone (pjsua2), one process per softphone.

``run_softphone(call="sip:15550001001@127.0.0.1:5060", record="out.wav", hold=4)`` runs
``python -m ari_app.testcall.softphone --call ... --record out.wav --hold 4`` and returns its JSON result.
Option names are the command-line flags with ``_`` for ``-``; ``True`` gives a bare flag, ``None``/``False``
leave it out, a list (or a dict, for ``header``) repeats it. This module never imports pjsua2 itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Mapping

__all__ = ["SoftphoneError", "run_softphone", "softphone_argv"]

_REPO = Path(__file__).resolve().parents[2]


class SoftphoneError(RuntimeError):
    """The softphone process did not produce its one JSON result line (crash, abort, timeout)."""

    def __init__(self, message: str, *, returncode: int | None, stdout: str, stderr: str) -> None:
        super().__init__(f"{message} (exit {returncode})\n--- stdout ---\n{stdout[-2000:]}\n--- stderr ---\n{stderr[-4000:]}")
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def softphone_argv(**options: Any) -> list[str]:
    """Command-line arguments for the softphone from keyword options."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif key in ("header", "headers"):
            items = value.items() if isinstance(value, Mapping) else [(None, v) for v in value]
            for name, val in items:
                argv.append("--header=" + (f"{name}: {val}" if name is not None else str(val)))
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv.append(f"{flag}={item}")
        else:
            # flag=value: a value starting with '-' (a generated password, a DTMF '-') is never taken for an option
            argv.append(f"{flag}={value}")
    return argv


def _default_process_timeout(options: Mapping[str, Any]) -> float:
    budget = float(options.get("wait") or 30.0) if options.get("answer") else float(options.get("timeout") or 30.0)
    return budget + float(options.get("reg_timeout") or 5.0) + 15.0


async def run_softphone(*, process_timeout: float | None = None, python: str | None = None,
                        env: Mapping[str, str] | None = None, **options: Any) -> dict[str, Any]:
    """Run one softphone process to completion and return its result (plus ``exit_code`` and ``stderr``).

    Raises SoftphoneError when the process does not print exactly one JSON line on stdout, or when it is
    still running after ``process_timeout`` (default: its own --timeout/--wait plus a margin); it is then
    asked to stop (SIGTERM: it hangs up and reports) and killed if it does not.
    """
    timeout = process_timeout if process_timeout is not None else _default_process_timeout(options)
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), child_env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        python or sys.executable, "-m", "ari_app.testcall.softphone", *softphone_argv(**options),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 8)
        except asyncio.TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
        raise SoftphoneError(f"softphone still running after {timeout} s", returncode=proc.returncode,
                             stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace")) from None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    lines = stdout.splitlines()
    if len(lines) != 1:
        raise SoftphoneError(f"expected one JSON line on stdout, got {len(lines)}", returncode=proc.returncode,
                             stdout=stdout, stderr=stderr)
    try:
        result = json.loads(lines[0])
    except ValueError:
        raise SoftphoneError("stdout is not JSON", returncode=proc.returncode, stdout=stdout, stderr=stderr) from None
    if proc.returncode not in (0, 1, 2):  # e.g. -6: pjsua2 aborted at exit after printing its result
        raise SoftphoneError("softphone exited abnormally", returncode=proc.returncode, stdout=stdout, stderr=stderr)
    result["exit_code"] = proc.returncode
    result["stderr"] = stderr[-4000:]
    return result
