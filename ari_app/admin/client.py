"""A small client of the running admin API, for the command line (`ringpool accounts`, `tokens`, `test-call`,
`import-numbers`, `reload`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ari_app.config import Settings
from ari_app.secrets_store import secret_path


def admin_token(settings: Settings) -> str | None:
    if settings.admin.token:
        return settings.admin.token
    path = secret_path(settings.state_dir, "admin-token")
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def api_request(settings: Settings, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
    """One admin API request (a JSON ``body``, or raw ``data``); raises OSError (URLError) when nobody listens."""
    host = settings.admin.bind if settings.admin.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    request = urllib.request.Request(f"http://{host}:{settings.admin.port}{path}", method=method,
                                     data=data if data is not None else
                                     json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", content_type)
    token = admin_token(settings)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {"error": exc.reason}
