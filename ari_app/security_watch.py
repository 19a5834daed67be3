"""fail2ban-style protection of the SIP port: follow Asterisk's security log (res_security_log), store every
failure, count authentication failures per source address in a sliding window, and ban an address that has
too many by rendering it into a PJSIP ACL (``type=acl``, ``deny=``) and reloading res_pjsip, so Asterisk answers
its requests with 403 Forbidden. Bans expire on their own; the admin API lists and lifts them.

Trunk addresses (and ``security.never_ban``) are never banned: a mistyped softphone password on the trunk's host
must not cut off real calls. Their failures are still stored and logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from ari_app.accounts.manager import AccountManager
from ari_app.config import Settings
from storage.db import utcnow

log = logging.getLogger(__name__)

# Failed attempts that count towards a ban: a wrong password, a response to a challenge that does not match,
# and requests for user names that do not exist (scanners).
COUNTED = frozenset({"ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID"})
# Stored as well, never counted (a banned address produces FailedACL for each request it still sends).
STORED = COUNTED | frozenset({"FailedACL", "AuthMethodNotAllowed", "RequestNotAllowed", "UnexpectedAddress"})
_EVENT = re.compile(r'SecurityEvent="([A-Za-z]+)"')
_FIELD = re.compile(r'([A-Za-z]+)="((?:[^"\\]|\\.)*)"')


def parse_security_line(line: str) -> dict[str, str] | None:
    """The fields of one res_security_log line, or None for anything else."""
    if not _EVENT.search(line):
        return None
    return {name: value[:256] for name, value in _FIELD.findall(line)}


def remote_ip(address: str | None) -> str | None:
    """``IPV4/UDP/192.0.2.7/5060`` -> ``192.0.2.7`` (validated; None if it is not an address)."""
    if not address:
        return None
    parts = address.split("/")
    candidate = parts[2] if len(parts) >= 3 else address
    try:
        return str(ipaddress.ip_address(candidate.strip("[]")))
    except ValueError:
        return None


class FailureCounter:
    """Failures per address in a sliding window of ``window`` seconds. One failed attempt counts once, however
    many security events it produces: Asterisk can log the same failure twice, and a retransmitted REGISTER
    fails again under the same SessionID."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures, self.window = max_failures, window
        self._seen: dict[str, deque[tuple[float, str | None]]] = defaultdict(deque)

    def add(self, address: str, now: float, attempt: str | None = None) -> int:
        seen = self._seen[address]
        while seen and seen[0][0] <= now - self.window:
            seen.popleft()
        if attempt is None or all(key != attempt for _, key in seen):
            seen.append((now, attempt))
        return len(seen)

    def reset(self, address: str) -> None:
        self._seen.pop(address, None)


class SecurityWatch:
    def __init__(self, settings: Settings, accounts: AccountManager, *, path: Path | None = None,
                 poll: float = 0.25) -> None:
        self.settings = settings
        self.accounts = accounts
        self.path = path or settings.asterisk.security_log
        self.poll = poll
        security = settings.security
        self.counter = FailureCounter(security.max_failures, security.window)
        self.protected = [ipaddress.ip_network(m, strict=False)
                          for t in settings.trunks.values() for m in t.match] + \
                         [ipaddress.ip_network(m, strict=False) for m in security.never_ban]
        self._last_acl: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._offset: int | None = None
        self._partial = ""

    def protected_address(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.protected)

    def start(self) -> None:
        if self.path is None:
            log.warning("no security log (asterisk.security_log): failed logins are not counted")
            return
        self._task = asyncio.create_task(self._run(), name="security-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        assert self.path is not None
        # Start at the end: what happened before this start was handled (or not) by the previous run.
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        log.info("watching %s for failed SIP logins (ban after %d in %d s for %d s)", self.path,
                 self.settings.security.max_failures, self.settings.security.window, self.settings.security.ban_seconds)
        last_expiry = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                for line in await loop.run_in_executor(None, self._read_new_lines):  # file I/O off the loop
                    await self.handle_line(line, loop.time())
                if loop.time() - last_expiry >= 1.0:
                    last_expiry = loop.time()
                    await self.accounts.expire_bans()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("security watch step failed; going on")
            await asyncio.sleep(self.poll)

    def _read_new_lines(self) -> list[str]:
        assert self.path is not None
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if self._offset is None or size < self._offset:  # rotated or truncated: start over
            self._offset, self._partial = 0, ""
        if size == self._offset:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(size - self._offset)
        self._offset = size
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the rest
        return lines

    async def handle_line(self, line: str, now: float) -> None:
        fields = parse_security_line(line)
        if fields is None:
            return
        event = fields.get("SecurityEvent", "")
        if event not in STORED:
            return
        address = remote_ip(fields.get("RemoteAddress"))
        if event == "FailedACL" and address is not None:
            # a banned address keeps sending: store one of these per address and window, not every request
            if now - self._last_acl.get(address, float("-inf")) < self.settings.security.window:
                return
            self._last_acl[address] = now
        account = fields.get("AccountID") or None
        details = {k: v for k, v in fields.items()
                   if k in ("Severity", "LocalAddress", "RemoteAddress", "SessionID", "EventTV")}
        await self.accounts.record_event(at=utcnow(), event=event, address=address, account=account,
                                         service=fields.get("Service"), details=details)
        if event not in COUNTED or address is None:
            return
        failures = self.counter.add(address, now, fields.get("SessionID") or None)
        log.warning("SIP %s from %s (account %r): %d in the last %d s", event, address, account, failures,
                    self.settings.security.window)
        if failures < self.settings.security.max_failures:
            return
        if self.protected_address(address):
            log.warning("not banning %s: it is a trunk address or in security.never_ban", address)
            return
        self.counter.reset(address)
        await self.accounts.ban(address, failures=failures,
                                reason=f"{failures} failed logins in {self.settings.security.window} s (last: {event})")

    def status(self) -> dict[str, Any]:
        return {"watching": str(self.path) if self.path else None, "running": bool(self._task and not self._task.done())}
