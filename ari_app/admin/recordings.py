"""GET /api/v1/calls/{call_id}/recording and /voicemail: a call's WAV files, kept under the state folder's
recordings/ (ari_app/call_connect.py and ari_app/ivr_port.py store them and put the path, relative to the state
folder, in the calls table).

The stored path is resolved and must land on a file inside state_dir/recordings before anything is served:
the column comes from our own database, but a wrong or tampered row must never turn this into a way to read
other files. Publishers get only their campaigns' calls, with the same 404 as GET /api/v1/calls/{call_id}.
Reads are not audited (the audit log records changes only).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.auth import allowed_campaigns
from ari_app.admin.openapi import error_content as _err, error_response as _error
from storage.async_store import AsyncCallStore

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {"recording": "the call's recording", "voicemail": "the message the caller left"}
_ID_RE = re.compile(openapi.ID_PATTERN)
_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]")


def stored_audio(state_dir: Path, stored: str | None) -> Path | None:
    """The file a recording or voicemail column names, when it is a regular file inside state_dir/recordings
    (symbolic links resolved); None otherwise, whether it is missing or points anywhere else."""
    if not stored:
        return None
    try:
        root = (state_dir / "recordings").resolve()
        path = (state_dir / stored).resolve()
        inside = path.is_relative_to(root) and path != root
        if not inside:
            log.warning("a stored recording path leaves %s: %r; not served", root, stored[:200])
            return None
        return path if path.is_file() else None
    except (OSError, RuntimeError, ValueError):  # a loop of links, an embedded NUL byte, ...
        return None


def download_name(call_id: str, kind: str) -> str:
    """The attachment's file name: only characters every browser and shell takes as they are."""
    return f"ringpool-{_UNSAFE_NAME_RE.sub('_', call_id)}-{kind}.wav"


def add_routes(app: web.Application, store: AsyncCallStore, state_dir: Path) -> None:
    async def serve(request: web.Request, kind: str) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        if not _ID_RE.fullmatch(call_id):
            return _error(400, "call id: letters, digits, '.', '_' and '-' only")
        call = await store.call("call_row", call_id)
        campaigns = allowed_campaigns(request)
        if call is None or (campaigns is not None and call.get("campaign") not in campaigns):
            return _error(404, f"no call {call_id}")  # the same answer: a publisher learns nothing of others' calls
        if not call.get(kind):
            return _error(404, f"call {call_id} has no {kind}")
        loop = asyncio.get_running_loop()
        path = await loop.run_in_executor(None, stored_audio, state_dir, call[kind])
        if path is None:
            return _error(404, f"the {kind} file of call {call_id} is missing")
        return web.FileResponse(path, headers={
            "Content-Type": "audio/wav", "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{download_name(call_id, kind)}"'})

    async def recording(request: web.Request) -> web.StreamResponse:
        return await serve(request, "recording")

    async def voicemail(request: web.Request) -> web.StreamResponse:
        return await serve(request, "voicemail")

    app.router.add_get("/api/v1/calls/{call_id}/recording", recording)
    app.router.add_get("/api/v1/calls/{call_id}/voicemail", voicemail)
    openapi.add_paths(app, PATHS)


def _operation(kind: str, operation_id: str) -> dict[str, Any]:
    return {"get": {
        "operationId": operation_id, "tags": ["calls"],
        "summary": f"Download {KINDS[kind]} (WAV)",
        "description": (f"The WAV file named by the call's `{kind}` field, as an attachment. Publisher tokens get "
                        "only their campaigns' calls (another campaign's call is a 404, as for GET "
                        "/api/v1/calls/{call_id}). Range requests are honoured."),
        "parameters": [{"name": "call_id", "in": "path", "required": True, "description": "call id",
                        "schema": {"type": "string", "pattern": f"^{openapi.ID_PATTERN}$"}}],
        "responses": {
            "200": {"description": "the audio",
                    "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                        "description": "attachment with a file name"}},
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
            "400": _err("not a call id"),
            "401": _err("missing or invalid bearer token"),
            "403": _err("this token may not read recordings"),
            "404": _err(f"no such call (or not one of this publisher's campaigns), or no {kind} file")}}}


PATHS: dict[str, Any] = {
    "/api/v1/calls/{call_id}/recording": _operation("recording", "getCallRecording"),
    "/api/v1/calls/{call_id}/voicemail": _operation("voicemail", "getCallVoicemail"),
}
