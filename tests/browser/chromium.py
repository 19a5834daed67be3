"""A small driver for headless Chromium over the Chrome DevTools Protocol, with nothing but aiohttp.

    async with Chromium() as browser:
        page = await browser.open("http://127.0.0.1:8080/demo/landing.html")
        await page.wait_for("document.documentElement.dataset.ringpool === 'ready'")
        text = await page.evaluate("document.querySelector('h1').textContent")
        await page.click("a[href^='tel:']")
        await page.screenshot(Path("tests/artifacts/landing.png"))

Chromium is started with its own throw-away profile and `--remote-debugging-port=0`; the port it picked is
read from `DevToolsActivePort` in the profile, so parallel test processes never collide. One WebSocket to
the browser carries every page's commands (flattened sessions). Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

DEFAULT_TIMEOUT = 15.0


class BrowserError(RuntimeError):
    """Chromium failed to start, a DevTools command failed, or the connection was lost."""


class JavaScriptError(BrowserError):
    """An expression evaluated in the page threw."""


def find_chromium() -> str | None:
    """The Chromium binary: $RINGPOOL_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    explicit = os.environ.get("RINGPOOL_CHROMIUM")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Connection:
    """Request/response matching and event dispatch over the browser's DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout: float) -> None:
        self._ws = ws
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {}  # by session id
        self._closed: BaseException | None = None
        self._reader = asyncio.create_task(self._read())

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        if self._closed is not None:
            raise BrowserError(f"DevTools connection closed: {self._closed}")
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        try:
            await self._ws.send_str(json.dumps(message))
            return await asyncio.wait_for(future, timeout or self._timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"DevTools {method} got no answer in {timeout or self._timeout:.0f} s") from None
        finally:
            self._pending.pop(message["id"], None)

    def on_events(self, session: str, handler: Callable[[str, dict[str, Any]], None]) -> None:
        self._handlers[session] = handler

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.get(data["id"])
                    if future is None or future.done():
                        continue
                    if "error" in data:
                        future.set_exception(BrowserError(f"DevTools error: {data['error'].get('message')}"))
                    else:
                        future.set_result(data.get("result", {}))
                elif (handler := self._handlers.get(data.get("sessionId", ""))) is not None:
                    handler(data["method"], data.get("params", {}))
            self._closed = BrowserError("the browser closed the connection")
        except Exception as exc:  # the reader must end quietly; waiting callers get the reason
            self._closed = exc
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError(f"DevTools connection closed: {self._closed}"))

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass


class Page:
    """One tab. `console` collects console messages, log entries (CORS and network failures land here) and
    uncaught exceptions as text; `errors` only the uncaught exceptions."""

    def __init__(self, conn: _Connection, target_id: str, session: str, timeout: float) -> None:
        self._conn = conn
        self.target_id = target_id
        self._session = session
        self.timeout = timeout
        self.console: list[str] = []
        self.errors: list[str] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        conn.on_events(session, self._on_event)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A raw DevTools command for this page, e.g. `await page.send("Emulation.setTouchEmulationEnabled", enabled=True)`."""
        return await self._conn.send(method, params, session=self._session)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"console.{params.get('type')}: {args}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(f"{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}".rstrip())
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            self.errors.append(text)
            self.console.append(f"uncaught: {text}")
        for wanted, future in list(self._waiters):
            if wanted == method and not future.done():
                future.set_result(params)

    def _expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """Registers interest in an event before the command that causes it, so it cannot be missed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        future.add_done_callback(lambda f: self._waiters.remove((method, f)))
        return future

    async def _enable(self) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def goto(self, url: str, *, referrer: str | None = None, timeout: float | None = None) -> None:
        """Navigates and waits for the load event."""
        loaded = self._expect("Page.loadEventFired")
        params: dict[str, Any] = {"url": url}
        if referrer:
            params["referrer"] = referrer
        try:
            answer = await self.send("Page.navigate", **params)
            if answer.get("errorText"):
                raise BrowserError(f"navigating to {url}: {answer['errorText']}")
            await asyncio.wait_for(loaded, timeout or self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{url} did not finish loading in {timeout or self.timeout:.0f} s") from None
        finally:
            loaded.cancel()

    async def reload(self, *, timeout: float | None = None) -> None:
        loaded = self._expect("Page.loadEventFired")
        try:
            await self.send("Page.reload")
            await asyncio.wait_for(loaded, timeout or self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"reload did not finish in {timeout or self.timeout:.0f} s") from None
        finally:
            loaded.cancel()

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited); raises JavaScriptError if it throws."""
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {text}")
        return answer.get("result", {}).get("value")

    async def wait_for(self, expression: str, *, timeout: float | None = None, interval: float = 0.05) -> Any:
        """Polls until the expression is truthy and returns its value; TimeoutError says what was last seen."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last: Any = None
        while True:
            try:
                last = await self.evaluate(expression)
                if last:
                    return last
            except JavaScriptError as exc:
                last = exc
            if time.monotonic() >= deadline:
                recent = "\n  ".join(self.console[-10:]) or "(none)"
                raise TimeoutError(f"waited {timeout or self.timeout:.1f} s for {expression!r}; last value "
                                   f"{last!r}; console:\n  {recent}")
            await asyncio.sleep(interval)

    async def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the first element matching the selector."""
        box = await self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
        }})()""")
        if box is None:
            raise BrowserError(f"nothing matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left",
                            clickCount=0 if kind == "mouseMoved" else 1)

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """Saves a PNG of the page (the whole page by default, else the viewport)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        answer = await self.send("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path

    async def set_cookie(self, name: str, value: str, url: str) -> None:
        """Sets a cookie for the site of `url`, as if that site had set it (e.g. Google Analytics' _ga)."""
        answer = await self.send("Network.setCookie", name=name, value=value, url=url)
        if answer.get("success") is False:
            raise BrowserError(f"cookie {name} was refused for {url}")

    async def add_init_script(self, source: str) -> None:
        """JavaScript that runs in every document this page loads from now on, before the page's own scripts."""
        await self.send("Page.addScriptToEvaluateOnNewDocument", source=source)

    async def close(self) -> None:
        await self._conn.send("Target.closeTarget", {"targetId": self.target_id})


class Chromium:
    """Headless Chromium with a throw-away profile; an async context manager."""

    def __init__(self, *, binary: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 window_size: tuple[int, int] = (1280, 900), args: tuple[str, ...] = ()) -> None:
        self.binary = binary or find_chromium()
        self.timeout = timeout
        self.window_size = window_size
        self.extra_args = args
        self._profile: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._conn: _Connection | None = None

    async def __aenter__(self) -> "Chromium":
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _command(self) -> list[str]:
        width, height = self.window_size
        return [
            str(self.binary), "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
            "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-extensions",
            "--mute-audio", "--password-store=basic", "--use-mock-keychain", "--disable-dev-shm-usage",
            # Tests rely on page timers (lease renewals): never throttle them.
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            *self.extra_args, "about:blank",
        ]

    async def start(self) -> None:
        if not self.binary:
            raise BrowserError("chromium is not installed (bash scripts/install-system-deps.sh installs it)")
        self._profile = Path(tempfile.mkdtemp(prefix="ringpool-chromium-"))
        with open(self._profile / "chromium.log", "wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command(), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)  # its own process group, so close() can end the renderers too
        address = await self._devtools_address()
        self._http = aiohttp.ClientSession()
        ws = await self._http.ws_connect(address, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        self._conn = _Connection(ws, self.timeout)

    async def _devtools_address(self) -> str:
        assert self._profile is not None and self._proc is not None
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise BrowserError(f"chromium exited with {self._proc.returncode}:\n{self.log_tail()}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            await asyncio.sleep(0.05)
        raise TimeoutError(f"chromium did not open its DevTools port in {self.timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of Chromium's own output (for failure messages)."""
        log = self._profile / "chromium.log" if self._profile else None
        if log is None or not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    async def open(self, url: str | None = None, *, referrer: str | None = None) -> Page:
        """A new tab, navigated to `url` (and loaded) when one is given."""
        if self._conn is None:
            raise BrowserError("the browser is not started")
        target = await self._conn.send("Target.createTarget", {"url": "about:blank"})
        attached = await self._conn.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self._conn, target["targetId"], attached["sessionId"], self.timeout)
        await page._enable()
        if url:
            await page.goto(url, referrer=referrer)
        return page

    async def close(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.send("Browser.close", timeout=3.0)
            except Exception:
                pass  # it is killed below if it did not go
            await self._conn.close()
            self._conn = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
            try:  # the group is this browser's own (start_new_session): renderers and zygotes go with it
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self._proc.returncode is None:
                await self._proc.wait()
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
