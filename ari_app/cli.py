"""The `ringpool` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ari_app.config import load_settings
from ari_app.yaml_located import ConfigError

DEFAULT_CONFIG = Path("config/ringpool.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ringpool", description="Call tracking and screening on Asterisk")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML configuration file")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start (bundled Asterisk if configured), the ARI app and the admin API")
    sub.add_parser("check-config", help="validate the configuration and exit")
    sub.add_parser("migrate", help="create or upgrade the database and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ringpool: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{settings.path}: OK ({len(settings.campaigns)} campaigns, {len(settings.numbers)} tracking numbers, "
              f"{len(settings.destinations)} destinations, {len(settings.trunks)} trunks)")
        return 0
    if args.command == "migrate":
        from storage.db import open_database, schema_version

        db = open_database(settings.database)
        print(f"{settings.database}: schema version {schema_version(db)}")
        return 0
    from ari_app.runner import run

    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
