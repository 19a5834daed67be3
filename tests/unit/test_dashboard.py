"""The dashboard page at / and its files at /ui/{name}: served without a token under a strict Content-Security-
Policy, and written so that policy holds: no inline script or style, no external resource, no HTML from data."""

from __future__ import annotations

import re
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import dashboard
from ari_app.admin.http import AdminDeps, build_admin_app

TOKEN = "dashboard-test-token-0123456789abcdef"
STATIC = dashboard.STATIC


async def _status() -> dict[str, Any]:
    return {"ari_connected": True, "database_ok": True}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(build_admin_app(AdminDeps(store=None, token=TOKEN,  # type: ignore[arg-type]
                                                             status=_status))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_the_page_is_served_without_a_token_under_a_strict_policy(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html" and resp.charset == "utf-8"
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name  # no 'unsafe-inline', no other origin
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["X-Frame-Options"] == "DENY"
    html = await resp.text()
    assert '<script src="/ui/app.js" defer></script>' in html and 'href="/ui/app.css"' in html
    assert TOKEN not in html


@pytest.mark.parametrize(("name", "content_type"), [("app.js", "application/javascript"), ("app.css", "text/css"),
                                                    ("icon.svg", "image/svg+xml")])
async def test_the_files(client: TestClient, name: str, content_type: str) -> None:
    resp = await client.get(f"/ui/{name}")
    assert resp.status == 200 and resp.content_type == content_type
    assert await resp.read() == (STATIC / name).read_bytes()
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["index.html", "nope.js", "..%2Fhttp.py", "APP.JS", "app.js.map", ".app.js"])
async def test_anything_else_is_a_json_404(client: TestClient, name: str) -> None:
    resp = await client.get(f"/ui/{name}")
    assert resp.status == 404 and (await resp.json()) == {"error": "no such file"}


async def test_the_api_behind_it_still_needs_the_token(client: TestClient) -> None:
    for path in ("/api/v1/stats/today", "/api/v1/stats/hourly", "/api/v1/calls"):
        assert (await client.get(path)).status == 401
    assert (await client.post("/api/v1/live/ticket")).status == 401


# --- the files themselves ------------------------------------------------------------------------------------

def test_index_has_no_inline_script_or_style_and_no_external_resource() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and not re.search(r"\sstyle=", html), "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html), "external resource"
    # accessibility basics
    assert '<html lang="en">' in html and 'name="viewport"' in html
    assert 'for="token"' in html and 'id="token"' in html and 'type="password"' in html
    assert 'role="status"' in html and 'aria-live="polite"' in html


def test_the_script_never_builds_html_from_strings() -> None:
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    js = re.sub(r"/\*.*?\*/", "", js, flags=re.S)  # comments may name what the code avoids
    js = re.sub(r"^\s*//.*$", "", js, flags=re.M)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setAttribute('style'", 'setAttribute("style"', "javascript:"):
        assert sink not in js, sink
    assert not re.search(r"\?\.|\?\?|\.flat\(|\.\.\.[A-Za-z(]", js), "beyond ES2017"
    assert "sessionStorage" in js and "localStorage" not in js  # the token stays in the tab
    assert "?token=" not in js  # the stream authenticates with a ticket


def test_no_external_urls_in_any_file() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        urls = [u for u in re.findall(r"https?://[^\s\"')]+", text) if u != "http://www.w3.org/2000/svg"]
        assert urls == [], (path.name, urls)
        assert "@import" not in text and "url(" not in text, path.name  # no fonts or images from anywhere
