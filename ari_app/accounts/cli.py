"""`ringpool accounts add|list|remove`: through the running app's admin API (which applies the change to
Asterisk at once); when Ringpool is not running, straight to the database (applied at its next start)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ari_app.accounts.manager import AccountManager
from ari_app.accounts.model import AccountError
from ari_app.admin.client import api_request as _api
from ari_app.config import Settings


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
