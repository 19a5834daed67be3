"""ari_app.secrets_store: generated once, mode 0600, reused, never empty."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ari_app.secrets_store import load_or_create_secret, secret_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_once_with_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / "state"  # does not exist yet
    value = load_or_create_secret(state, "admin-token")
    path = secret_path(state, "admin-token")
    assert path == state / "secrets" / "admin-token"
    assert path.read_text(encoding="utf-8") == value + "\n"
    assert mode(path) == 0o600
    assert mode(path.parent) & 0o077 == 0  # the folder is private too
    assert len(value) >= 40 and value.strip() == value  # 32 random bytes, url-safe base64
    assert all(ch.isalnum() or ch in "-_" for ch in value)


def test_reused_on_later_calls(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path, "ari-password")
    assert load_or_create_secret(tmp_path, "ari-password") == first
    assert load_or_create_secret(tmp_path, "admin-token") != first  # each name has its own secret


def test_existing_value_is_read_and_stripped(tmp_path: Path) -> None:
    path = secret_path(tmp_path, "ari-password")
    path.parent.mkdir(parents=True)
    path.write_text("  operator-chosen-password \n", encoding="utf-8")
    assert load_or_create_secret(tmp_path, "ari-password") == "operator-chosen-password"


@pytest.mark.parametrize("content", ["", "\n", "   \n\t"])
def test_empty_file_is_replaced_never_returned(tmp_path: Path, content: str) -> None:
    path = secret_path(tmp_path, "admin-token")
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    value = load_or_create_secret(tmp_path, "admin-token")
    assert value and value.strip() == value
    assert path.read_text(encoding="utf-8").strip() == value
    assert load_or_create_secret(tmp_path, "admin-token") == value


def test_values_differ_between_state_folders(tmp_path: Path) -> None:
    values = {load_or_create_secret(tmp_path / f"s{i}", "admin-token") for i in range(5)}
    assert len(values) == 5


def test_nbytes_controls_length(tmp_path: Path) -> None:
    assert len(load_or_create_secret(tmp_path, "short", nbytes=8)) == 11  # base64 of 8 bytes, unpadded


def test_regenerated_secret_in_a_world_readable_file_becomes_0600(tmp_path: Path) -> None:
    path = secret_path(tmp_path, "admin-token")
    path.parent.mkdir(parents=True)
    path.write_text("", encoding="utf-8")
    path.chmod(0o644)
    load_or_create_secret(tmp_path, "admin-token")
    assert mode(path) == 0o600
