"""A TrackingService for tests that only build the admin app (the route table, the OpenAPI document)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from typing import Callable

from ari_app.click_to_call import ClickToCallLimits
from ari_app.config import Settings, load_settings
from ari_app.config_reload import ConfigReloader
from ari_app.screening.service import ScreeningService
from ari_app.tracking.service import TrackingService

SITE_KEY = "unit-site-key-0123456789"
POOLS_YAML = f"""\
inventory: ["5550100300"]
pools:
  - name: web
    campaign: spring
    numbers: ["5550100201", "5550100202"]
    max_size: 3
    overflow_number: "5550100299"
    site_key: {SITE_KEY}
    allowed_origins: ["http://127.0.0.1:8080"]
  - name: ext
    campaign: spring
    mode: extension
    number: "5550100250"
    site_key: {SITE_KEY}
"""
MINIMAL = """\
state_dir: var
asterisk: {bundled: false}
ari: {password: unit-test-ari-password}
trunks: [{name: carrier, match: [127.0.0.1]}]
destinations: [{name: desk, host: 127.0.0.1}]
campaigns: [{name: spring, destination: desk, numbers: ["5550100001"]}]
"""


def screening_for_docs() -> ScreeningService:
    return ScreeningService(tracking_for_docs().settings, None)  # type: ignore[arg-type]


def tracking_for_docs() -> TrackingService:
    """Not started: enough to register the routes (site keys are configured, so no secret is written)."""
    folder = Path(tempfile.mkdtemp(prefix="ringpool-docs-"))
    (folder / "ringpool.yaml").write_text(MINIMAL + POOLS_YAML, encoding="utf-8")
    return TrackingService(load_settings(folder / "ringpool.yaml"), None)  # type: ignore[arg-type]


class ServiceForDocs:
    """What ConfigReloader needs of RingpoolService: the settings, and a way to apply new ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applied: list[Settings] = []

    async def apply_settings(self, new: Settings) -> None:
        self.settings = new
        self.applied.append(new)


def reloader_for_docs(folder: Path | None = None) -> ConfigReloader:
    """Configuration changes against a throw-away copy of MINIMAL (fragments go to its own state folder)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="ringpool-config-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ringpool.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    return ConfigReloader(path, ServiceForDocs(load_settings(path)))  # type: ignore[arg-type]


def click_to_call_for_docs() -> Callable[..., str]:
    """Checks requests as the call manager does; never places a call (no campaign of MINIMAL allows it)."""
    settings, limits = tracking_for_docs().settings, ClickToCallLimits()

    def start(campaign: str, number: object, session_id: str | None = None) -> str:
        limits.check_and_count(settings, campaign, number)
        return "never"

    return start
