"""`ringpool accounts add|list|remove`: through the running app's admin API (which applies the change to
Asterisk at once); when Ringpool is not running, straight to the database (applied at its next start)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from ari_app.accounts.manager import AccountManager
from ari_app.accounts.model import AccountError
from ari_app.config import Settings
from ari_app.secrets_store import secret_path


def _token(settings: Settings) -> str | None:
    if settings.admin.token:
        return settings.admin.token
    path = secret_path(settings.state_dir, "admin-token")
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _api(settings: Settings, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One admin API request; raises OSError (URLError) when nobody listens."""
    host = settings.admin.bind if settings.admin.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    request = urllib.request.Request(f"http://{host}:{settings.admin.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    token = _token(settings)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {"error": exc.reason}


async def _offline(settings: Settings, args: argparse.Namespace, body: dict[str, Any] | None) -> tuple[int, Any]:
    manager = AccountManager(settings)  # no reload: Asterisk is not ours to touch while Ringpool is stopped
    await manager.open()
    try:
        if args.accounts_command == "list":
            return 200, {"accounts": [a.public() for a in await manager.list_accounts()]}
        if args.accounts_command == "add":
            spec, password, _applied = await manager.create(body)
            return 201, spec.public() | {"password": password, "applied": False}
        await manager.remove(args.username)
        return 200, {"removed": args.username, "applied": False}
    except AccountError as exc:
        return exc.status, {"error": str(exc)}
    except KeyError:
        return 404, {"error": f"no test account {args.username}"}
    finally:
        await manager.close()


def accounts_command(settings: Settings, args: argparse.Namespace) -> int:
    body: dict[str, Any] | None = None
    if args.accounts_command == "add":
        headers: dict[str, str] = {}
        for text in args.header:
            name, sep, value = text.partition(":")
            if not sep or not name.strip():
                print(f"ringpool: --header {text!r}: expected 'Name: value'", file=sys.stderr)
                return 2
            headers[name.strip()] = value.strip()
        body = {"username": args.username, "caller_number": args.caller_number, "caller_name": args.caller_name,
                "headers": headers}
        if args.password:
            body["password"] = args.password
    method, path = {"list": ("GET", "/api/v1/test-accounts"), "add": ("POST", "/api/v1/test-accounts"),
                    "remove": ("DELETE", f"/api/v1/test-accounts/{getattr(args, 'username', '')}")}[args.accounts_command]
    offline = False
    try:
        status, result = _api(settings, method, path, body)
    except OSError:
        offline = True
        status, result = asyncio.run(_offline(settings, args, body))
    if status >= 400:
        print(f"ringpool: {result.get('error', result)}", file=sys.stderr)
        return 1
    if args.accounts_command == "list":
        accounts = result["accounts"]
        if not accounts:
            print("no test accounts")
        for a in accounts:
            extra = ", ".join(f"{k}: {v}" for k, v in (a.get("headers") or {}).items())
            print(f"{a['username']:<20} {a['caller_number']:<16} {a['caller_name'] or '-':<24} {a['source']:<6} {extra}")
        return 0
    if args.accounts_command == "add":
        print(f"created test account {result['username']} (presents {result['caller_number']})")
        print(f"  password: {result['password']}   (shown only now)")
        print(f"  register: sip:{result['username']}@{settings.asterisk.sip_bind}:{settings.asterisk.sip_port}")
    else:
        print(f"removed test account {result['removed']}")
    if offline:
        print("  Ringpool is not running: stored, applied to Asterisk when it starts")
    elif not result.get("applied"):
        print("  stored, but Asterisk could not be updated now (see the Ringpool log)")
    return 0
