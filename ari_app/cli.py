"""The `ringpool` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from ari_app.admin.tokens_cli import add_tokens_parser
from ari_app.config import Settings, load_settings
from ari_app.logging_setup import configure_logging
from ari_app.testcall.cli import add_test_call_parser
from ari_app.yaml_located import ConfigError

DEFAULT_CONFIG = Path("config/ringpool.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ringpool", description="Call tracking and screening on Asterisk")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML configuration file")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default=os.environ.get("RINGPOOL_LOG_FORMAT", "text"),
                        help="text (default) or json: one JSON object per line, with the call id "
                             "(default from RINGPOOL_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start (bundled Asterisk if configured), the ARI app and the admin API")
    sub.add_parser("check-config", help="validate the configuration and exit")
    sub.add_parser("migrate", help="create or upgrade the database and exit")
    accounts = sub.add_parser("accounts", help="softphone test accounts: add, list, remove")
    acc_sub = accounts.add_subparsers(dest="accounts_command", required=True)
    add = acc_sub.add_parser("add", help="create a test account (the password is printed once)")
    add.add_argument("username")
    add.add_argument("--caller-number", required=True, help="the caller number the account presents")
    add.add_argument("--caller-name", default="", help="the caller name the account presents")
    add.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                     help="P-Asserted-Identity, Privacy, Diversion or P-Charge-Info to present (repeatable)")
    add.add_argument("--password", help="default: a strong generated one")
    acc_sub.add_parser("list", help="list test accounts")
    remove = acc_sub.add_parser("remove", help="remove a test account created with add or the API")
    remove.add_argument("username")
    numbers = sub.add_parser("import-numbers", help="add tracking numbers from a CSV file (number,campaign) to the "
                                                    "running service; each bad row is reported")
    numbers.add_argument("csv", type=Path)
    sub.add_parser("reload", help="make the running service read the configuration again (like SIGHUP)")
    add_tokens_parser(sub)  # ringpool tokens create|list|revoke (ari_app/admin/tokens_cli.py)
    add_test_call_parser(sub)  # ringpool test-call NUMBER (ari_app/testcall/cli.py)
    args = parser.parse_args(argv)
    # validated here, not with choices=, so a bad RINGPOOL_LOG_FORMAT is refused too
    if args.log_format not in ("text", "json"):
        parser.error(f"--log-format / RINGPOOL_LOG_FORMAT: expected text or json, not {args.log_format!r}")
    try:
        configure_logging(args.log_level, json=args.log_format == "json")
    except ValueError as exc:
        parser.error(f"--log-level: {exc}")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ringpool: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{settings.path}: OK ({len(settings.campaigns)} campaigns, {len(settings.numbers)} tracking numbers, "
              f"{len(settings.destinations)} destinations, {len(settings.trunks)} trunks, "
              f"{len(settings.test_accounts)} test accounts)")
        return 0
    if args.command == "migrate":
        from storage.db import open_database, schema_version

        db = open_database(settings.database)
        print(f"{settings.database}: schema version {schema_version(db)}")
        return 0
    if args.command == "accounts":
        from ari_app.accounts.cli import accounts_command

        return accounts_command(settings, args)
    if args.command == "test-call":
        from ari_app.testcall.cli import test_call_command

        return test_call_command(settings, args)
    if args.command in ("import-numbers", "reload"):
        return _config_command(settings, args)
    if args.command == "tokens":
        from ari_app.admin.tokens_cli import tokens_command

        return tokens_command(settings, args)
    from ari_app.runner import run

    asyncio.run(run(settings))
    return 0


def _config_command(settings: Settings, args: argparse.Namespace) -> int:
    """import-numbers and reload, through the running service's admin API (it applies them without a restart)."""
    from ari_app.admin.client import api_request

    try:
        if args.command == "reload":
            status, body = api_request(settings, "POST", "/api/v1/config/reload")
        else:
            data = args.csv.read_bytes()
            status, body = api_request(settings, "POST", "/api/v1/numbers/import", data=data, content_type="text/csv")
    except OSError as exc:
        print(f"ringpool: the admin API does not answer ({exc}); is `ringpool run` running?", file=sys.stderr)
        return 1
    for error in (body or {}).get("errors") or []:
        print(f"row {error['row']}: {error['number']!r} {error['campaign']!r}: {error['error']}", file=sys.stderr)
    if status != 200:
        print(f"ringpool: {body.get('error') if isinstance(body, dict) else body}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in body.items() if k != "errors"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
