"""A fake ARI server (aiohttp.web) on a random loopback port, restartable on the same port."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

USER = "ringpool"
PASSWORD = "s3cret"
AUTH_HEADER = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class FakeAri:
    """Serves a handful of ARI REST routes plus /ari/events, recording what it receives."""

    user = USER
    password = PASSWORD
    auth_header = AUTH_HEADER

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.requests: list[dict[str, Any]] = []
        self.ws_requests: list[dict[str, Any]] = []
        self.ws_clients: dict[web.WebSocketResponse, web.Request] = {}
        self.ws_connections = 0
        self.greeting: list[Any] = []  # frames sent right after each WebSocket connect
        self.answer_pings = True  # False simulates a half-dead peer (no pongs)
        self.channels: dict[str, dict[str, Any]] = {
            "chan-1": {"id": "chan-1", "state": "Ring", "name": "PJSIP/trunk-00000001"}
        }
        self.variables: dict[tuple[str, str], str] = {("chan-1", "RP_DID"): "15550001111"}
        self.global_vars: dict[str, str] = {"DB_KEYS(ringpool)": "a,b"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    # -- lifecycle --

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/ari/events", self._events)
        r.add_get("/ari/slow", self._slow)
        r.add_get("/ari/reset", self._reset)
        r.add_get("/ari/status/{code}", self._status)
        r.add_get("/ari/status-text/{code}", self._status_text)
        r.add_get("/ari/asterisk/info", self._info)
        r.add_get("/ari/asterisk/variable", self._global_var)
        r.add_get("/ari/channels", self._list_channels)
        r.add_get("/ari/channels/{id}", self._get_channel)
        r.add_delete("/ari/channels/{id}", self._delete_channel)
        r.add_get("/ari/channels/{id}/variable", self._get_var)
        r.add_route("*", "/ari/{tail:.*}", self._echo)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self._make_app(), shutdown_timeout=0.5, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Like Asterisk dying: sockets cut, port closed."""
        self.abort_websockets()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def abort_websockets(self) -> None:
        for request in list(self.ws_clients.values()):
            if request.transport is not None:
                request.transport.abort()

    async def close_websockets(self) -> None:
        for ws in list(self.ws_clients):
            await ws.close(code=1001, message=b"going away")

    async def push(self, frame: Any) -> None:
        """Send an event (dict -> JSON) or a raw text frame to every connected client."""
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for ws in list(self.ws_clients):
            if not ws.closed:
                await ws.send_str(text)

    # -- handlers --

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        if request.headers.get("Authorization") != AUTH_HEADER:
            return web.json_response({"message": "Authentication required"}, status=401)
        return await handler(request)

    def _record(self, request: web.Request, body: Any) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path.split("?")[0],
            "query": dict(request.query),
            "json": body,
            "auth": request.headers.get("Authorization"),
        }
        self.requests.append(entry)
        return entry

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=self.answer_pings)
        await ws.prepare(request)
        self.ws_requests.append(
            {"query": dict(request.query), "auth": request.headers.get("Authorization")}
        )
        self.ws_clients[ws] = request
        self.ws_connections += 1
        try:
            for frame in self.greeting:
                await ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))
            async for _msg in ws:
                pass
        finally:
            self.ws_clients.pop(ws, None)
        return ws

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({})

    async def _reset(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(1)
        return web.json_response({})

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"message": f"fake error {code}"}, status=code)

    async def _status_text(self, request: web.Request) -> web.Response:
        return web.Response(text="plain failure", status=int(request.match_info["code"]))

    async def _info(self, request: web.Request) -> web.Response:
        self._record(request, None)
        return web.json_response({"system": {"version": "22.10.1", "entity_id": "fake"}})

    async def _global_var(self, request: web.Request) -> web.Response:
        self._record(request, None)
        name = request.query.get("variable", "")
        if name not in self.global_vars:
            return web.json_response({"message": "Provided variable was not found"}, status=404)
        return web.json_response({"value": self.global_vars[name]})

    async def _list_channels(self, request: web.Request) -> web.Response:
        self._record(request, None)
        return web.json_response(list(self.channels.values()))

    async def _get_channel(self, request: web.Request) -> web.Response:
        self._record(request, None)
        chan = self.channels.get(request.match_info["id"])
        if chan is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.json_response(chan)

    async def _delete_channel(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if self.channels.pop(request.match_info["id"], None) is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.Response(status=204)

    async def _get_var(self, request: web.Request) -> web.Response:
        self._record(request, None)
        key = (request.match_info["id"], request.query.get("variable", ""))
        if key not in self.variables:
            return web.json_response({"message": "Provided variable was not found"}, status=404)
        return web.json_response({"value": self.variables[key]})

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        entry = self._record(request, body)
        return web.json_response({k: entry[k] for k in ("method", "path", "query", "json")})


@pytest.fixture
async def fake_ari():
    fake = FakeAri()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_until():
    """``await wait_until(lambda: cond, timeout)``: poll a condition, fail on timeout."""
    return _wait_until
