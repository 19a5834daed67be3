"""AriClient: REST + events over one session, started and stopped by the context manager."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from ari_app.ari import AriClient


async def test_client_shares_session_and_streams(fake_ari, wait_until):
    events: list[dict[str, Any]] = []
    connected: list[int] = []

    async def on_connected() -> None:
        connected.append(len(await client.rest.list_channels()))  # reconcile via REST

    client = AriClient(fake_ari.base_url, fake_ari.user, fake_ari.password, "ringpool",
                       on_event=events.append, on_connected=on_connected,
                       backoff_initial=0.02, backoff_max=0.1)
    async with client as ari:
        assert ari is client
        session = ari.session
        assert session is not None
        assert ari.rest.session is session
        assert await ari.events.wait_connected(2)
        assert (await ari.rest.get_info())["system"]["version"] == "22.10.1"
        await wait_until(lambda: connected == [1])
        await fake_ari.push({"type": "StasisStart", "channel": {"id": "chan-1"}})
        await wait_until(lambda: len(events) == 1)
        task = ari.events_task
        assert task is not None and not task.done()
    assert session.closed
    assert task.done() and not client.events.running
    assert not client.events.connected


async def test_client_exit_immediately(fake_ari):
    async with AriClient(fake_ari.base_url, fake_ari.user, fake_ari.password, "ringpool",
                         on_event=lambda e: None) as ari:
        pass
    assert ari.session is not None and ari.session.closed
    assert fake_ari.ws_connections == 0


async def test_client_without_events_and_external_session(fake_ari):
    async with aiohttp.ClientSession() as session:
        async with AriClient(fake_ari.base_url, fake_ari.user, fake_ari.password, "ringpool",
                             on_event=lambda e: None, start_events=False,
                             session=session) as ari:
            assert ari.events_task is None
            assert await ari.rest.get_channel("chan-1")
            await asyncio.sleep(0.05)
            assert fake_ari.ws_connections == 0
        assert not session.closed
