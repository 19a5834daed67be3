"""Fixtures for tests that drive headless Chromium (tests/browser/chromium.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.browser.chromium import Chromium, find_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots (gitignored)


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Chromium, installed with the other system packages if missing; a skip only when that is impossible."""
    binary = find_chromium()
    if binary is None:
        done = subprocess.run(["bash", str(REPO / "scripts" / "install-system-deps.sh")],
                              capture_output=True, text=True, timeout=900)
        binary = find_chromium()
        if binary is None:
            pytest.skip(f"chromium is missing and could not be installed: {done.stderr.strip()[-300:]}")
    return binary


@pytest.fixture
async def browser(chromium_binary: str) -> AsyncIterator[Chromium]:
    async with Chromium(binary=chromium_binary) as chromium:
        yield chromium
