"""Changing the configuration while calls go on: reload the file (SIGHUP or the admin API), and create, change or
delete resources through the API.

API-made resources are YAML fragments in the state folder (config.d/<section>--<name>.yaml, flows/<name>.yaml),
merged with the operator's file at load, so that file and its comments are never rewritten. Every change is
validated by loading the whole configuration as it would be; a change that does not load is undone and its
error (file, line, key) returned. Calls in progress keep the campaign and plan they started with.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import yaml

from ari_app.config import MANAGED_DIR, MANAGED_FLOWS, NAME_RE, Settings, load_settings
from ari_app.yaml_located import ConfigError

if TYPE_CHECKING:
    from ari_app.service import RingpoolService

log = logging.getLogger(__name__)

# What a running service cannot take over without a restart (ports, credentials, folders, the SIP side of
# test accounts and security, the speech model it loaded).
RESTART_FIELDS = ("state_dir", "database", "ari", "asterisk", "admin", "test_accounts", "security", "speech")
SECTIONS = ("campaigns", "destinations", "buyers", "pools", "webhooks")


class RestartNeeded(Exception):
    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"these settings change only with a restart: {', '.join(fields)}")
        self.fields = fields


class NotManaged(Exception):
    """The resource is defined in the operator's file: the API does not rewrite it."""


def restart_fields(old: Settings, new: Settings) -> list[str]:
    return [name for name in RESTART_FIELDS if getattr(old, name) != getattr(new, name)]


@dataclass
class Applied:
    campaigns: int
    destinations: int
    flows: int
    pjsip_reloaded: bool

    def as_dict(self) -> dict[str, Any]:
        return {"campaigns": self.campaigns, "destinations": self.destinations, "flows": self.flows,
                "pjsip_reloaded": self.pjsip_reloaded}


class ConfigReloader:
    """One change at a time: write, validate by loading everything, apply or undo."""

    def __init__(self, path: Path, service: "RingpoolService",
                 apply_pjsip: Callable[[Settings], Awaitable[None]] | None = None) -> None:
        self.path = path
        self.service = service
        self.apply_pjsip = apply_pjsip  # the bundled Asterisk: endpoints for new destinations and trunks
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def fragments(self) -> Path:
        return self.settings.state_dir / MANAGED_DIR

    @property
    def flows(self) -> Path:
        return self.settings.state_dir / MANAGED_FLOWS

    async def reload(self) -> Applied:
        """Read the file (and the fragments) again and apply it."""
        async with self._lock:
            return await self._load_and_apply()

    async def change(self, write: Callable[[], Callable[[], None]]) -> Applied:
        """``write`` changes files and returns how to undo it; the change stays only if everything loads."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            undo = await loop.run_in_executor(None, write)
            try:
                return await self._load_and_apply()
            except (ConfigError, RestartNeeded):
                await loop.run_in_executor(None, undo)
                raise

    async def _load_and_apply(self) -> Applied:
        new = await asyncio.get_running_loop().run_in_executor(None, load_settings, self.path)
        old = self.settings
        restart = restart_fields(old, new)
        if restart:
            raise RestartNeeded(restart)
        pjsip = False
        if self.apply_pjsip is not None and (new.destinations != old.destinations or new.trunks != old.trunks):
            await self.apply_pjsip(new)
            pjsip = True
        await self.service.apply_settings(new)
        return Applied(len(new.campaigns), len(new.destinations), len(new.flows), pjsip)

    # --- managed resources --------------------------------------------------------------------------------

    def fragment_path(self, section: str, name: str) -> Path:
        if section not in SECTIONS or not NAME_RE.match(name):
            raise ValueError(f"{section}/{name}: not a resource name")
        return self.fragments / f"{section}--{name}.yaml"

    def source_of(self, section: str, name: str) -> str | None:
        """Where a resource is defined: "api", "file", or None when it does not exist."""
        if self.fragment_path(section, name).exists():
            return "api"
        return "file" if name in _names(self.settings, section) else None

    async def put(self, section: str, name: str, item: dict[str, Any]) -> Applied:
        """Create or replace an API-made resource (``item`` is its YAML mapping, with ``name``)."""
        if self.source_of(section, name) == "file":
            raise NotManaged(f"{section} {name!r} is defined in {self.path}: change it there, then reload")
        path = self.fragment_path(section, name)
        text = yaml.safe_dump({section: [{"name": name, **{k: v for k, v in item.items() if k != "name"}}]},
                              sort_keys=False, allow_unicode=True)
        return await self.change(lambda: _replace_file(path, text))

    async def delete(self, section: str, name: str) -> Applied:
        source = self.source_of(section, name)
        if source == "file":
            raise NotManaged(f"{section} {name!r} is defined in {self.path}: remove it there, then reload")
        if source is None:
            raise KeyError(f"no {section[:-1]} named {name!r}")
        path = self.fragment_path(section, name)
        return await self.change(lambda: _remove_file(path))

    async def import_numbers(self, rows: list[dict[str, str]], batch: str) -> Applied:
        """Add tracking numbers (already checked row by row) as one fragment."""
        path = self.fragments / f"numbers--{batch}.yaml"
        text = yaml.safe_dump({"numbers": rows}, sort_keys=False)
        return await self.change(lambda: _replace_file(path, text))

    async def delete_number(self, number: str) -> Applied:
        """Remove a number that came with an import (its batch fragment is rewritten without it)."""
        if number not in self.settings.numbers:
            raise KeyError(f"no tracking number {number}")
        for path in sorted(self.fragments.glob("numbers--*.yaml")):
            rows = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("numbers") or []
            kept = [row for row in rows if str(row.get("number")) != number]
            if len(kept) != len(rows):
                text = yaml.safe_dump({"numbers": kept}, sort_keys=False)
                return await self.change(lambda: _replace_file(path, text) if kept else _remove_file(path))
        owner = self.settings.numbers[number].campaign
        source = self.source_of("campaigns", owner) if owner in self.settings.campaigns else "file"
        raise NotManaged(f"{number} belongs to campaign {owner!r} as configured "
                         + ("through the API: PUT the campaign without it" if source == "api" else
                            f"in {self.path}: remove it there, then reload"))

    async def put_flow(self, name: str, text: str) -> Applied:
        if not NAME_RE.match(name):
            raise ValueError(f"{name}: not a flow name")
        if name in self.settings.flows and Path(self.settings.flows[name].file).parent.resolve() != \
                self.flows.resolve():
            raise NotManaged(f"flow {name!r} is defined in {self.settings.flows[name].file}: change it there")
        path = self.flows / f"{name}.yaml"
        return await self.change(lambda: _replace_file(path, text))

    async def delete_flow(self, name: str) -> Applied:
        path = self.flows / f"{name}.yaml"
        if not NAME_RE.match(name) or not path.exists():
            raise KeyError(f"no flow named {name!r} made through the API")
        return await self.change(lambda: _remove_file(path))


def _names(settings: Settings, section: str) -> set[str]:
    return set(getattr(settings, section))


def _replace_file(path: Path, text: str) -> Callable[[], None]:
    """Write ``path`` whole (or not at all); returns the undo."""
    old = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

    def undo() -> None:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(old)
    return undo


def _remove_file(path: Path) -> Callable[[], None]:
    old = path.read_bytes()
    path.unlink()
    return lambda: path.write_bytes(old)

