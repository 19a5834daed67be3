"""Test accounts: the one model for configured and API-created accounts, their passwords and their pjsip.conf
sections, and the ban list rendered as a pjsip ACL.

Passwords never have defaults. A configured account without a password gets a generated one in the state
folder's secrets (mode 0600); an account created through the API or the CLI gets a generated (or given)
password that is shown once and stored only as the digest Asterisk needs (MD5 of user:realm:password).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ari_app.config import (ACCOUNT_CALLER_RE, ACCOUNT_HEADERS, ACCOUNT_NAME_RE, Settings, TestAccount,
                            account_headers_problem, account_password_problem, account_username_problem)
from ari_app.secrets_store import load_or_create_secret

REALM = "ringpool"
CONTEXT = "ringpool-test"
BANS_ACL = "ringpool-bans"
ACCOUNTS_CONF = "pjsip_ringpool.conf"  # the file pjsip.conf #tryincludes; the app rewrites it on changes
BASE_CODECS = ("ulaw", "alaw")


class AccountError(ValueError):
    """A bad account request; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.status = status


@dataclass(frozen=True)
class AccountSpec:
    """What Asterisk needs for one account, wherever it was defined."""

    username: str
    password_digest: str  # hex MD5 of username:realm:password
    caller_number: str
    caller_name: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    source: str = "config"  # "config" or "api"
    created_at: str | None = None

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "caller_number": self.caller_number, "caller_name": self.caller_name,
                "headers": dict(self.headers), "source": self.source, "created_at": self.created_at}


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def password_digest(username: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def secret_name(username: str) -> str:
    return f"test-account-{username}"


def configured_password(settings: Settings, account: TestAccount) -> str:
    """The configured password, else the generated one kept in the state folder's secrets."""
    return account.password or load_or_create_secret(settings.state_dir, secret_name(account.username), nbytes=18)


def configured_specs(settings: Settings) -> list[AccountSpec]:
    return [AccountSpec(username=a.username, password_digest=password_digest(a.username, configured_password(settings, a)),
                        caller_number=a.caller_number, caller_name=a.caller_name, headers=dict(a.headers),
                        source="config")
            for a in settings.test_accounts.values()]


def validate_new_account(data: Any) -> tuple[str, str | None, str, str, dict[str, str]]:
    """Check an API/CLI request body; returns (username, password or None, caller_number, caller_name, headers)."""
    if not isinstance(data, dict):
        raise AccountError("body", "expected a JSON object")
    unknown = sorted(set(data) - {"username", "password", "caller_number", "caller_name", "headers"})
    if unknown:
        raise AccountError(unknown[0], "unknown field (allowed: username, password, caller_number, caller_name, headers)")
    username = data.get("username")
    if username is None:
        raise AccountError("username", "is required")
    problem = account_username_problem(username)
    if problem:
        raise AccountError("username", problem)
    password = data.get("password")
    if password is not None:
        problem = account_password_problem(password)
        if problem:
            raise AccountError("password", f"{problem} (or leave it out: a strong one is generated)")
    number = data.get("caller_number")
    if number is None:
        raise AccountError("caller_number", "is required")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or not ACCOUNT_CALLER_RE.match(number):
        raise AccountError("caller_number", "digits with an optional leading +, or anonymous/restricted/unavailable")
    name = data.get("caller_name") or ""
    if not isinstance(name, str) or not ACCOUNT_NAME_RE.match(name):
        raise AccountError("caller_name", "up to 64 characters, no control characters, quotes, ';', '\\', '<' or '>'")
    problem, headers = account_headers_problem(data.get("headers") or {})
    if problem:
        raise AccountError("headers", problem)
    return username, password, number, name, headers


# --- rendering ------------------------------------------------------------------------------------------------

def _escape(value: str) -> str:
    """A value safe in an Asterisk .conf line: ';' starts a comment unless escaped."""
    return value.replace("\\", "\\\\").replace(";", "\\;")


def _lines(name: str, options: Iterable[tuple[str, str]]) -> str:
    return "\n".join([f"[{name}]"] + [f"{key} = {value}" for key, value in options]) + "\n"


def account_sections(spec: AccountSpec, *, opus: bool = False) -> str:
    """Endpoint (digest auth, registration, NAT-friendly, own dialplan context), auth and AOR, all named by the
    user name: the username identifier finds the endpoint by the From/To user, then the digest is checked."""
    codecs = ",".join(BASE_CODECS + (("opus",) if opus else ()))
    variables = [("set_var", f"RINGPOOL_TA_NUMBER={_escape(spec.caller_number)}")]
    if spec.caller_name:
        variables.append(("set_var", f"RINGPOOL_TA_NAME={_escape(spec.caller_name)}"))
    for header, variable in ACCOUNT_HEADERS.values():
        if spec.headers.get(header):
            variables.append(("set_var", f"RINGPOOL_TA_{variable.removeprefix('RINGPOOL_')}={_escape(spec.headers[header])}"))
    endpoint = [("type", "endpoint"), ("context", CONTEXT), ("identify_by", "username"), ("disallow", "all"),
                ("allow", codecs), ("auth", spec.username), ("aors", spec.username), ("direct_media", "no"),
                ("rtp_symmetric", "yes"), ("force_rport", "yes"), ("rewrite_contact", "yes"),
                ("dtmf_mode", "rfc4733"), ("trust_id_inbound", "no"), ("send_pai", "no"),
                ("allow_subscribe", "no"), ("allow_transfer", "no"), *variables]
    auth = [("type", "auth"), ("auth_type", "digest"), ("realm", REALM), ("username", spec.username),
            ("password_digest", f"md5:{spec.password_digest}")]
    aor = [("type", "aor"), ("max_contacts", "1"), ("remove_existing", "yes"), ("qualify_frequency", "0")]
    return "\n".join([_lines(spec.username, endpoint), _lines(spec.username, auth), _lines(spec.username, aor)])


def bans_section(addresses: Iterable[str]) -> str:
    """A global PJSIP ACL denying banned source addresses (every other address stays allowed)."""
    denies = []
    for address in sorted(set(addresses)):
        network = ipaddress.ip_network(address, strict=False)  # never render anything but an address
        denies.append(("deny", str(network)))
    if not denies:
        return ""
    return _lines(BANS_ACL, [("type", "acl"), *denies])


def render_accounts_conf(specs: Iterable[AccountSpec], bans: Iterable[str] = (), *, opus: bool = False) -> str:
    parts = ["; Rendered by Ringpool: test accounts and banned addresses. Rewritten on every change; do not edit.\n"]
    parts += [account_sections(spec, opus=opus) for spec in specs]
    ban = bans_section(bans)
    if ban:
        parts.append(ban)
    return "\n".join(parts)


def opus_module_present(root: Path) -> bool:
    modules = root / "usr/lib/x86_64-linux-gnu/asterisk/modules"
    return (modules / "codec_opus_open_source.so").exists() and (modules / "res_format_attr_opus.so").exists()
