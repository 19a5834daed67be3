"""Thin asyncio REST client for the Asterisk REST Interface (ARI), Asterisk 22.

Why our own: PyPI ``ari`` (ari-py) is Python 2 code and fails to import on 3.11, and the
other clients are not on aiohttp. This module is deliberately thin: one generic
:meth:`AriRest.request` that does auth, parameter rendering, a hard per-request
timeout and typed errors, plus one-line convenience methods named after the ARI
operations the app uses. Anything not wrapped can be reached through ``request``.
"""

from __future__ import annotations

import asyncio
import base64
import json as _json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .errors import AriConnectionError, AriNotFound, AriTimeout, extract_message, http_error

__all__ = ["AriRest", "ari_root_url", "basic_auth_header", "render_params"]


def ari_root_url(base_url: str) -> str:
    """Return ``http(s)://host:port/ari`` for a base URL given with or without ``/ari``.

    Accepting both spares config mistakes: ari.conf users think of
    ``http://127.0.0.1:8088`` while the swagger documents ``.../ari``.
    """
    root = base_url.rstrip("/")
    if not root.endswith("/ari"):
        root += "/ari"
    return root


def basic_auth_header(username: str, password: str) -> str:
    """``Authorization`` value for HTTP basic auth (ari.conf users).

    Built by hand: ``aiohttp.BasicAuth`` is deprecated in aiohttp 3.14 while its
    replacement does not exist in the 3.9 we still support.
    """
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _render_value(value: Any) -> str:
    # ARI's query parser only understands lower-case booleans; Python would send "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        # allowMultiple parameters (media, channel, formats) are comma separated.
        return ",".join(_render_value(v) for v in value)
    return str(value)


def render_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Render query parameters as ARI expects: drop ``None``, bools as true/false, lists comma-joined."""
    if not params:
        return {}
    return {k: _render_value(v) for k, v in params.items() if v is not None}


def _id(value: str) -> str:
    """Quote an id for use as one path segment (ids we choose may contain any character)."""
    return quote(str(value), safe="")


def _csv(value: str | Iterable[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


class AriRest:
    """ARI REST calls over one aiohttp session.

    A session passed in is shared and not closed by :meth:`close` (so REST and the
    event WebSocket can share one connection pool); otherwise one is created on first
    use and owned.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 5.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url
        self.root_url = ari_root_url(base_url)
        self.timeout = timeout
        self._headers = {"Authorization": basic_auth_header(username, password)}
        self._session = session
        self._owns_session = session is None

    # -- plumbing -------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use (``None`` until first request when owned)."""
        return self._session

    def _use_session(self, session: aiohttp.ClientSession) -> None:
        """Switch to a shared session (used by AriClient, which opens it inside the loop)."""
        self._session = session
        self._owns_session = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """Perform one ARI call and return its parsed JSON (``None`` for 204 or an empty body).

        ``path`` is relative to ``/ari`` (e.g. ``/channels``). A timeout is always applied
        (``timeout`` or the instance default): a call-handling coroutine must never hang
        on a stuck Asterisk. Raises :class:`AriHttpError` subclasses, :class:`AriTimeout`
        or :class:`AriConnectionError`.
        """
        method = method.upper()
        if not path.startswith("/"):
            path = "/" + path
        limit = self.timeout if timeout is None else timeout
        session = self._get_session()
        try:
            async with asyncio.timeout(limit):
                async with session.request(
                    method,
                    self.root_url + path,
                    params=render_params(params),
                    json=json,
                    headers=self._headers,
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    reason = resp.reason or ""
        except TimeoutError as exc:
            raise AriTimeout(method, path, limit) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AriConnectionError(method, path, f"{type(exc).__name__}: {exc}") from exc

        if status >= 400:
            raise http_error(status, method, path, extract_message(body, reason or f"HTTP {status}"))
        if raw:
            return body
        if status == 204 or not body.strip():
            return None
        try:
            return _json.loads(body)
        except ValueError:
            # e.g. GET /recordings/stored/{name}/file returns audio, not JSON.
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                return body

    async def close(self) -> None:
        """Close the session if this instance created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # -- asterisk -------------------------------------------------------------------

    async def get_info(self) -> dict[str, Any]:
        """GET /asterisk/info: version/uptime; a cheap liveness probe."""
        return await self.request("GET", "/asterisk/info")

    async def get_global_variable(self, name: str) -> str | None:
        """GET /asterisk/variable: a global variable or an evaluated dialplan function
        (e.g. ``DB_KEYS(ringpool)``); ``None`` if Asterisk reports it missing (404)."""
        try:
            data = await self.request("GET", "/asterisk/variable", params={"variable": name})
        except AriNotFound:
            return None
        return None if data is None else data.get("value")

    async def set_global_variable(self, name: str, value: str | None) -> None:
        """POST /asterisk/variable: set a global variable (``None`` clears it)."""
        await self.request("POST", "/asterisk/variable", params={"variable": name, "value": value})

    # -- applications ---------------------------------------------------------------

    async def set_event_filter(self, app: str, allowed: list[str]) -> dict[str, Any]:
        """PUT /applications/{app}/eventFilter: only these event types are sent to the app
        (fewer events to serialise in Asterisk and to parse here)."""
        return await self.request("PUT", f"/applications/{_id(app)}/eventFilter",
                                  json={"allowed": [{"type": kind} for kind in allowed]})

    # -- channels -------------------------------------------------------------------

    async def list_channels(self) -> list[dict[str, Any]]:
        """GET /channels: every active channel (used to reconcile after a reconnect)."""
        return await self.request("GET", "/channels")

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        """GET /channels/{id}."""
        return await self.request("GET", f"/channels/{_id(channel_id)}")

    async def hangup(
        self, channel_id: str, reason: str | None = None, reason_code: int | None = None
    ) -> None:
        """DELETE /channels/{id}: hang up or reject; ``reason`` (busy, congestion, ...) or
        ``reason_code`` (Q.850 cause) picks the SIP response when the call is unanswered."""
        if reason is not None and reason_code is not None:
            raise ValueError("give reason or reason_code, not both")
        await self.request(
            "DELETE",
            f"/channels/{_id(channel_id)}",
            params={"reason": reason, "reason_code": reason_code},
        )

    async def answer(self, channel_id: str) -> None:
        """POST /channels/{id}/answer."""
        await self.request("POST", f"/channels/{_id(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """POST /channels/{id}/ring: send 180 Ringing while we decide what to do."""
        await self.request("POST", f"/channels/{_id(channel_id)}/ring")

    async def progress(self, channel_id: str) -> None:
        """POST /channels/{id}/progress: 183 Session Progress (early media; Asterisk 22.6+)."""
        await self.request("POST", f"/channels/{_id(channel_id)}/progress")

    async def play(
        self, channel_id: str, media: str | list[str], playback_id: str | None = None
    ) -> dict[str, Any]:
        """POST /channels/{id}/play (or /play/{playbackId} to choose the id, so the
        PlaybackFinished event can be matched without a race); a list of media URIs
        is played in sequence."""
        path = f"/channels/{_id(channel_id)}/play"
        if playback_id is not None:
            path += f"/{_id(playback_id)}"
        return await self.request("POST", path, params={"media": _csv(media)})

    async def stop_playback(self, playback_id: str) -> None:
        """DELETE /playbacks/{id}."""
        await self.request("DELETE", f"/playbacks/{_id(playback_id)}")

    async def create_channel(
        self,
        endpoint: str,
        app: str,
        app_args: str | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | list[str] | None = None,
        variables: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST /channels/create: create (not dial) an outbound channel; :meth:`dial` it
        after adding it to a bridge so no early media is lost."""
        return await self.request(
            "POST",
            "/channels/create",
            params={
                "endpoint": endpoint,
                "app": app,
                "appArgs": app_args,
                "channelId": channel_id,
                "otherChannelId": other_channel_id,
                "originator": originator,
                "formats": None if formats is None else _csv(formats),
            },
            json={"variables": variables} if variables else None,
        )

    async def dial(
        self, channel_id: str, caller: str | None = None, timeout: int | None = None
    ) -> None:
        """POST /channels/{id}/dial: dial a channel made by :meth:`create_channel`."""
        await self.request(
            "POST",
            f"/channels/{_id(channel_id)}/dial",
            params={"caller": caller, "timeout": timeout},
        )

    async def originate(
        self,
        endpoint: str,
        app: str,
        app_args: str | None = None,
        channel_id: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,
        originator: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST /channels: create and dial in one step, into Stasis ``app``."""
        return await self.request(
            "POST",
            "/channels",
            params={
                "endpoint": endpoint,
                "app": app,
                "appArgs": app_args,
                "channelId": channel_id,
                "callerId": caller_id,
                "timeout": timeout,
                "originator": originator,
            },
            json={"variables": variables} if variables else None,
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """GET /channels/{id}/variable: the value, or ``None`` on 404 (unset variable or
        channel already gone; both mean "nothing to read" for the app)."""
        try:
            data = await self.request(
                "GET", f"/channels/{_id(channel_id)}/variable", params={"variable": name}
            )
        except AriNotFound:
            return None
        return None if data is None else data.get("value")

    async def set_variable(self, channel_id: str, name: str, value: str | None) -> None:
        """POST /channels/{id}/variable (``None`` unsets it)."""
        await self.request(
            "POST",
            f"/channels/{_id(channel_id)}/variable",
            params={"variable": name, "value": value},
        )

    async def snoop(
        self,
        channel_id: str,
        app: str,
        spy: str = "in",
        whisper: str = "none",
        app_args: str | None = None,
        snoop_id: str | None = None,
    ) -> dict[str, Any]:
        """POST /channels/{id}/snoop: a channel carrying the caller's audio (``spy=in``),
        e.g. to feed external media for detection without touching the call path."""
        return await self.request(
            "POST",
            f"/channels/{_id(channel_id)}/snoop",
            params={
                "app": app,
                "spy": spy,
                "whisper": whisper,
                "appArgs": app_args,
                "snoopId": snoop_id,
            },
        )

    async def external_media(
        self,
        app: str,
        external_host: str,
        format: str = "slin16",
        channel_id: str | None = None,
        encapsulation: str = "rtp",
        transport: str = "udp",
        direction: str | None = None,
    ) -> dict[str, Any]:
        """POST /channels/externalMedia: stream a bridge's audio as RTP to ``host:port``.
        Note: this channel also gets StasisStart, with empty args."""
        return await self.request(
            "POST",
            "/channels/externalMedia",
            params={
                "app": app,
                "external_host": external_host,
                "format": format,
                "channelId": channel_id,
                "encapsulation": encapsulation,
                "transport": transport,
                "direction": direction,
            },
        )

    # -- bridges --------------------------------------------------------------------

    async def list_bridges(self) -> list[dict[str, Any]]:
        """GET /bridges (reconcile after a reconnect)."""
        return await self.request("GET", "/bridges")

    async def create_bridge(
        self, bridge_id: str | None = None, type: str = "mixing", name: str | None = None
    ) -> dict[str, Any]:
        """POST /bridges."""
        return await self.request(
            "POST", "/bridges", params={"type": type, "bridgeId": bridge_id, "name": name}
        )

    async def add_to_bridge(self, bridge_id: str, channels: list[str]) -> None:
        """POST /bridges/{id}/addChannel."""
        await self.request(
            "POST", f"/bridges/{_id(bridge_id)}/addChannel", params={"channel": _csv(channels)}
        )

    async def remove_from_bridge(self, bridge_id: str, channels: list[str]) -> None:
        """POST /bridges/{id}/removeChannel."""
        await self.request(
            "POST",
            f"/bridges/{_id(bridge_id)}/removeChannel",
            params={"channel": _csv(channels)},
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        """DELETE /bridges/{id} (channels in it are removed, not hung up)."""
        await self.request("DELETE", f"/bridges/{_id(bridge_id)}")

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        """POST /bridges/{id}/moh: music on hold for everyone in a (holding) bridge."""
        await self.request("POST", f"/bridges/{_id(bridge_id)}/moh", params={"mohClass": moh_class})

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        """DELETE /bridges/{id}/moh."""
        await self.request("DELETE", f"/bridges/{_id(bridge_id)}/moh")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """POST /channels/{id}/moh."""
        await self.request("POST", f"/channels/{_id(channel_id)}/moh", params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        """DELETE /channels/{id}/moh."""
        await self.request("DELETE", f"/channels/{_id(channel_id)}/moh")

    # -- recordings -----------------------------------------------------------------

    async def record_bridge(self, bridge_id: str, name: str, *, format: str = "wav", max_duration: int = 0,
                            if_exists: str = "overwrite", beep: bool = False) -> dict[str, Any]:
        """POST /bridges/{id}/record: record what the bridge mixes (both sides of a call)."""
        return await self.request("POST", f"/bridges/{_id(bridge_id)}/record", params={
            "name": name, "format": format, "maxDurationSeconds": max_duration, "ifExists": if_exists,
            "beep": beep})

    async def record_channel(self, channel_id: str, name: str, *, format: str = "wav", max_duration: int = 0,
                             max_silence: int = 0, if_exists: str = "overwrite", beep: bool = False,
                             terminate_on: str = "none") -> dict[str, Any]:
        """POST /channels/{id}/record: what one channel sends (a voicemail message)."""
        return await self.request("POST", f"/channels/{_id(channel_id)}/record", params={
            "name": name, "format": format, "maxDurationSeconds": max_duration, "maxSilenceSeconds": max_silence,
            "ifExists": if_exists, "beep": beep, "terminateOn": terminate_on})

    async def stop_recording(self, name: str) -> None:
        """POST /recordings/live/{name}/stop: stop and keep the file."""
        await self.request("POST", f"/recordings/live/{_id(name)}/stop")

    async def fetch_stored_recording(self, name: str, timeout: float = 30.0) -> bytes:
        """GET /recordings/stored/{name}/file: the finished file's bytes (works with a remote Asterisk too)."""
        return await self.request("GET", f"/recordings/stored/{_id(name)}/file", timeout=timeout, raw=True)

    async def delete_stored_recording(self, name: str) -> None:
        """DELETE /recordings/stored/{name}."""
        await self.request("DELETE", f"/recordings/stored/{_id(name)}")
