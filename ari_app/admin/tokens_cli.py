"""`ringpool tokens create|list|revoke`: API tokens with roles (ari_app/admin/tokens.py).

Like `ringpool accounts`: through the running app's admin API with the admin token (so its cache drops a
revoked token at once, and the change is audited as config-admin); when Ringpool is not running, straight to
the database, audited as actor ``cli``. The token is printed once, on creation; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ari_app.config import Settings


def add_tokens_parser(sub: Any) -> None:
    """The `tokens` subcommand and its own subcommands, on the `ringpool` parser's subparsers."""
    from ari_app.admin.tokens import ROLES

    tokens = sub.add_parser("tokens", help="API tokens with roles: create, list, revoke")
    tok_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tok_sub.add_parser("create", help="create a token (printed once; only its SHA-256 is kept)")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="admin: everything; read_only: GET only; publisher: its campaigns' calls only")
    create.add_argument("--campaign", action="append", dest="campaigns", metavar="CAMPAIGN",
                        help="a campaign a publisher token sees (repeatable; required for publisher)")
    create.add_argument("--publisher", help="publisher tokens: a label (default: the name)")
    tok_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = tok_sub.add_parser("revoke", help="revoke a token (refused from now on)")
    revoke.add_argument("name")


def _offline(settings: Settings, args: argparse.Namespace, body: dict[str, Any] | None) -> tuple[int, Any]:
    from ari_app.admin.auth import insert_audit, redact
    from ari_app.admin.tokens import (CLI_ACTOR, NAME_RE, TokenError, generate_token, hash_token, insert_token,
                                      list_tokens, revoke_token, validate_new_token)
    from storage.db import open_database, utcnow

    db = open_database(settings.database)
    try:
        if args.tokens_command == "list":
            return 200, {"tokens": list_tokens(db)}
        if args.tokens_command == "create":
            try:
                name, role, campaigns, publisher = validate_new_token(body)
                token = generate_token()
                record = insert_token(db, name, role, campaigns,
                                      publisher or (name if role == "publisher" else None), hash_token(token))
            except TokenError as exc:
                return exc.status, {"error": str(exc)}
            status, result = 201, record | {"token": token}
            details: dict[str, Any] = {"body": redact(body)}
        else:
            if not NAME_RE.match(args.name):
                return 400, {"error": "name: 1-40 of a-z 0-9 _ . - (starting with a letter or digit)"}
            record = revoke_token(db, args.name)
            if record is None:
                return 404, {"error": f"no active token {args.name}"}
            status, result, details = 200, {"revoked": args.name, "revoked_at": record["revoked_at"]}, {}
        insert_audit(db, {"at": utcnow(), "actor": CLI_ACTOR, "role": "admin", "method": "CLI",
                          "path": f"ringpool tokens {args.tokens_command}", "status": status,
                          "target": f"name={args.name}", "details": details or None, "remote": None})
        return status, result
    finally:
        db.conn.close()


def tokens_command(settings: Settings, args: argparse.Namespace) -> int:
    from ari_app.admin.client import api_request as _api  # the same admin API client as `ringpool accounts`

    from ari_app.admin.tokens import NAME_RE

    if args.tokens_command in ("create", "revoke") and not NAME_RE.match(args.name):
        print("ringpool: name: 1-40 of a-z 0-9 _ . - (starting with a letter or digit)", file=sys.stderr)
        return 2
    body: dict[str, Any] | None = None
    if args.tokens_command == "create":
        body = {"name": args.name, "role": args.role}
        if args.campaigns is not None:
            body["campaigns"] = args.campaigns
        if args.publisher is not None:
            body["publisher"] = args.publisher
    method, path = {"list": ("GET", "/api/v1/tokens"), "create": ("POST", "/api/v1/tokens"),
                    "revoke": ("DELETE", f"/api/v1/tokens/{getattr(args, 'name', '')}")}[args.tokens_command]
    offline = False
    try:
        status, result = _api(settings, method, path, body)
    except OSError:
        offline = True
        status, result = _offline(settings, args, body)
    if status >= 400:
        print(f"ringpool: {result.get('error', result) if isinstance(result, dict) else result}", file=sys.stderr)
        return 1
    if args.tokens_command == "list":
        tokens = result["tokens"]
        if not tokens:
            print("no tokens (the configured admin token always works)")
        for t in tokens:
            scope = ",".join(t["campaigns"] or []) or "-"
            state = f"revoked {t['revoked_at']}" if t["revoked_at"] else f"last used {t['last_used_at'] or 'never'}"
            print(f"{t['name']:<24} {t['role']:<10} {scope:<30} created {t['created_at']}  {state}")
        return 0
    if args.tokens_command == "create":
        scope = f" for campaigns {', '.join(result['campaigns'])}" if result.get("campaigns") else ""
        print(f"created {result['role']} token {result['name']}{scope}")
        print(f"  token: {result['token']}   (shown only now; Ringpool keeps only its SHA-256)")
        print("  use:   Authorization: Bearer <token>")
    else:
        print(f"revoked token {result['revoked']}")
    if offline:
        print("  Ringpool is not running: written to the database directly")
    return 0
