"""Open the SQLite database: WAL for concurrent readers, foreign keys on, migrations applied at start."""

from __future__ import annotations

import logging
import sqlite3
import re
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from storage.schema import MIGRATIONS

log = logging.getLogger(__name__)


def utcnow() -> str:
    """Timestamps are ISO 8601 UTC with milliseconds, so they sort and compare as text."""
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


API_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def stored_time(text: str) -> str:
    """A UTC time given to the API (fraction optional) in the stored form, which compares as text: three
    fraction digits, truncated, built from the text (strftime would not zero-pad a year before 1000).
    Raises ValueError if it is not a valid time."""
    if not API_TIME_RE.fullmatch(text):
        raise ValueError("expected UTC time like 2026-01-31T12:00:00Z")
    seconds, _, fraction = text[:-1].partition(".")
    parse_time(f"{seconds}.{fraction or '0'}Z")
    return f"{seconds}.{fraction[:3].ljust(3, '0')}Z"


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((parse_time(end) - parse_time(start)).total_seconds(), 3)


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate. One connection per thread: see storage.async_store."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 10000")
    migrate(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def migrate(db: sqlite_utils.Database) -> int:
    """Apply each pending migration in its own transaction; returns the resulting version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
               "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)")
    current = schema_version(db)
    for version, description, sql in MIGRATIONS:
        if version <= current:
            continue
        with db.conn:
            db.conn.execute("BEGIN")
            for statement in sql.split(";"):
                if statement.strip():
                    db.conn.execute(statement)
            db.conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, utcnow()))
        log.info("database migrated to version %d (%s)", version, description)
        current = version
    return current
