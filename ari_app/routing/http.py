"""POST /api/v1/click-to-call: Ringpool calls the visitor, then the business (ari_app/click_to_call.py)."""

from __future__ import annotations

import re
from typing import Any, Callable

from aiohttp import web

from ari_app.admin import openapi
from ari_app.click_to_call import ClickToCallRefused

SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ClickToCallStarter = Callable[..., str]  # (campaign, number, session_id) -> call id


def add_routes(app: web.Application, start: ClickToCallStarter) -> None:
    async def click_to_call(request: web.Request) -> web.Response:
        try:
            body = await openapi.read_json_object(request)
            unknown = set(body) - {"campaign", "number", "session_id"}
            if unknown:
                raise ClickToCallRefused(f"{sorted(unknown)[0]}: unknown field")
            session = body.get("session_id")
            if session is not None and (not isinstance(session, str) or not SESSION_RE.match(session)):
                raise ClickToCallRefused("session_id: the visitor session's id")
            call_id = start(body.get("campaign"), body.get("number"), session)
        except ClickToCallRefused as exc:
            return openapi.error_response(exc.status, str(exc))
        except ValueError as exc:
            return openapi.error_response(400, str(exc))
        return web.json_response({"call_id": call_id, "status": "calling the visitor"}, status=202)

    app.router.add_post("/api/v1/click-to-call", click_to_call)
    openapi.add_paths(app, PATHS)


_REQUEST: dict[str, Any] = {"type": "object", "required": ["campaign", "number"], "additionalProperties": False,
                            "properties": {
                                "campaign": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"},
                                "number": {"type": "string", "maxLength": 32,
                                           "description": "the visitor's number with its country code"},
                                "session_id": {"type": "string", "pattern": SESSION_RE.pattern,
                                               "description": "the visitor session to attribute the call to"}}}
PATHS = {"/api/v1/click-to-call": {"post": {
    "operationId": "clickToCall", "tags": ["calls"],
    "summary": "Call the visitor through the campaign's trunk, then the business; the call follows the campaign's "
               "flow and routing like an inbound one and is recorded with direction click_to_call",
    "requestBody": {"required": True, "content": {"application/json": {"schema": _REQUEST}}},
    "responses": {
        "202": openapi.json_content({"type": "object", "required": ["call_id"], "properties": {
            "call_id": {"type": "string"}, "status": {"type": "string"}}}, "the call is being placed"),
        "400": openapi.error_content("invalid request, a campaign without click_to_call, or a number outside "
                                     "its prefixes; the message names the field"),
        "401": openapi.error_content("missing or invalid bearer token"),
        "403": openapi.error_content("the token's role may not place calls"),
        "429": openapi.error_content("this number was called too often in the last hour")}}}}
