"""Generated secrets (ARI password, admin token): created on first run, never a default, mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_secret(state_dir: Path, name: str, *, nbytes: int = 32) -> str:
    folder = state_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when an empty file with a looser mode was already there
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def secret_path(state_dir: Path, name: str) -> Path:
    return state_dir / "secrets" / name
