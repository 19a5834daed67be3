"""API tokens with roles (issue 7): ``admin``, ``read_only`` and ``publisher`` (only its own campaigns' calls).

A token is ``rpt_`` plus 32 random bytes (``secrets.token_urlsafe``), shown once when it is created; the
database keeps only its SHA-256 (``api_tokens.token_hash``, schema migration 7).

Why SHA-256 and not bcrypt/scrypt: slow, salted password hashes exist because human passwords have little
entropy, so an attacker holding the digests can try likely passwords one by one; the cost factor makes every
guess expensive. A token from 256 random bits has no likely values to try: inverting SHA-256 for it is a
2^256 search whatever the hash costs, and a salt adds nothing when no two tokens are ever equal. A fast,
unsalted hash also lets a request find its token by an indexed equality lookup, instead of running a
deliberately slow KDF against every stored token on every request (which would also hand anyone able to reach
the port a cheap way to burn CPU with made-up tokens).

The rows are read and written on the call store's storage thread (``AsyncCallStore.run``), so SQLite never
runs on the event loop. A small in-memory cache (``CACHE_TTL`` seconds, ``CACHE_SIZE`` entries) keeps most
requests off the database; revoking through this process drops the token from it at once, and a revocation
written by another process (the CLI while the app is stopped and started again, or directly in the database)
takes effect within ``CACHE_TTL``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_content as _err, error_response as _error
from storage.db import parse_time, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from storage.async_store import AsyncCallStore

ROLES = ("admin", "read_only", "publisher")
TOKEN_PREFIX = "rpt_"
TOKEN_RE = re.compile(r"^rpt_[A-Za-z0-9_-]{43}$")  # what generate_token makes: anything else is not looked up
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,39}$"
NAME_RE = re.compile(NAME_PATTERN)
CONFIG_ADMIN = "config-admin"  # the actor of the configured / generated admin token in the audit log
CLI_ACTOR = "cli"  # the actor of changes the CLI writes straight to the database (Ringpool not running)
RESERVED_NAMES = frozenset({CONFIG_ADMIN, CLI_ACTOR})
MAX_CAMPAIGNS = 100
CACHE_TTL = 15.0
CACHE_SIZE = 1024
LAST_USED_EVERY = 60.0  # seconds: last_used_at is written at most this often per token (on a cache miss)
_CAMPAIGN_RE = re.compile(f"^{openapi.NAME_PATTERN}$")
_PUBLISHER_LABEL_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
_BODY_KEYS = {"name", "role", "campaigns", "publisher"}


@dataclass(frozen=True)
class Principal:
    """Who a request is: ``request["principal"]`` under /api/ (ari_app/admin/auth.py).

    ``campaigns`` is None for admin and read_only (every call) and the campaigns a publisher may see."""

    name: str
    role: str
    campaigns: tuple[str, ...] | None = None


class TokenError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str | bytes) -> str:
    data = token if isinstance(token, bytes) else token.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


def validate_new_token(data: Any) -> tuple[str, str, tuple[str, ...] | None, str | None]:
    """(name, role, campaigns, publisher label) from a POST /api/v1/tokens body (or the CLI's arguments)."""
    if not isinstance(data, dict):
        raise TokenError("body: expected a JSON object")
    unknown = sorted(set(data) - _BODY_KEYS)
    if unknown:
        raise TokenError(f"unknown key(s): {', '.join(str(k) for k in unknown)[:200]}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise TokenError("name: 1-40 of a-z 0-9 _ . - (starting with a letter or digit)")
    if name in RESERVED_NAMES:
        raise TokenError(f"name: {name!r} is reserved (it names other actors in the audit log)")
    role = data.get("role")
    if role not in ROLES:
        raise TokenError(f"role: one of {', '.join(ROLES)}")
    campaigns, publisher = data.get("campaigns"), data.get("publisher")
    if role != "publisher":
        if campaigns is not None or publisher is not None:
            raise TokenError("campaigns, publisher: only for role publisher (the other roles see every call)")
        return name, role, None, None
    if (not isinstance(campaigns, list) or not 1 <= len(campaigns) <= MAX_CAMPAIGNS
            or not all(isinstance(c, str) and _CAMPAIGN_RE.match(c) for c in campaigns)):
        raise TokenError(f"campaigns: a publisher token needs a list of 1-{MAX_CAMPAIGNS} campaign names")
    if len(set(campaigns)) != len(campaigns):
        raise TokenError("campaigns: a campaign is listed twice")
    if publisher is not None and (not isinstance(publisher, str) or not _PUBLISHER_LABEL_RE.match(publisher)):
        raise TokenError("publisher: text of 1-100 characters")
    return name, role, tuple(campaigns), publisher


# --- storage (synchronous; run on the storage thread) -------------------------------------------------------

_COLUMNS = "name, role, publisher, campaigns, created_at, last_used_at, revoked_at"


def _public(row: tuple[Any, ...]) -> dict[str, Any]:
    name, role, publisher, campaigns, created_at, last_used_at, revoked_at = row
    return {"name": name, "role": role, "publisher": publisher,
            "campaigns": json.loads(campaigns) if campaigns else None,
            "created_at": created_at, "last_used_at": last_used_at, "revoked_at": revoked_at}


def insert_token(db: "sqlite_utils.Database", name: str, role: str, campaigns: tuple[str, ...] | None,
                 publisher: str | None, token_hash: str) -> dict[str, Any]:
    try:
        with db.conn:
            db.conn.execute(
                "INSERT INTO api_tokens (name, role, publisher, campaigns, token_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [name, role, publisher, json.dumps(list(campaigns)) if campaigns is not None else None,
                 token_hash, utcnow()])
    except sqlite3.IntegrityError:
        # names stay taken after revocation, so an actor in the audit log always means one token
        raise TokenError(f"a token named {name!r} exists (or existed: revoked names are not reused)",
                         status=409) from None
    row = db.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE name = ?", [name]).fetchone()
    return _public(row)


def list_tokens(db: "sqlite_utils.Database") -> list[dict[str, Any]]:
    return [_public(r) for r in db.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY name").fetchall()]


def revoke_token(db: "sqlite_utils.Database", name: str) -> dict[str, Any] | None:
    """Revoke an active token; None if there is no active token of that name."""
    with db.conn:
        changed = db.conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                  [utcnow(), name]).rowcount
    if not changed:
        return None
    return _public(db.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE name = ?", [name]).fetchone())


def find_token(db: "sqlite_utils.Database", token_hash: str) -> Principal | None:
    """The active token with this hash, as a Principal; notes its use (at most every LAST_USED_EVERY s)."""
    row = db.conn.execute("SELECT id, name, role, campaigns, last_used_at FROM api_tokens "
                          "WHERE token_hash = ? AND revoked_at IS NULL", [token_hash]).fetchone()
    if row is None:
        return None
    token_id, name, role, campaigns, last_used_at = row
    now = utcnow()
    if last_used_at is None or _older_than(last_used_at, now, LAST_USED_EVERY):
        with db.conn:
            db.conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, token_id])
    if role == "publisher":
        return Principal(name, role, tuple(json.loads(campaigns or "[]")))
    return Principal(name, role, None)


def _older_than(earlier: str, now: str, seconds: float) -> bool:
    try:
        return (parse_time(now) - parse_time(earlier)).total_seconds() >= seconds
    except ValueError:
        return True


# --- the registry the admin app uses ---------------------------------------------------------------------------


class TokenRegistry:
    """Create, list, revoke and look up stored tokens for one admin app."""

    def __init__(self, store: "AsyncCallStore | None") -> None:
        self.store = store
        self._cache: dict[str, tuple[Principal, float]] = {}  # token hash -> (principal, expires, monotonic)
        self._generation = 0  # bumped by every revocation: a lookup that raced one is not cached

    def _store(self) -> "AsyncCallStore":
        if self.store is None:
            raise web.HTTPServiceUnavailable(reason="the token store is not available in this process")
        return self.store

    async def create(self, data: Any) -> tuple[dict[str, Any], str]:
        """Validate and store a new token; returns (its public fields, the token itself: show it once)."""
        name, role, campaigns, publisher = validate_new_token(data)
        if role == "publisher" and publisher is None:
            publisher = name
        token = generate_token()
        store = self._store()
        record = await store.run(insert_token, store.db, name, role, campaigns, publisher, hash_token(token))
        return record, token

    async def list(self) -> list[dict[str, Any]]:
        store = self._store()
        return await store.run(list_tokens, store.db)

    async def revoke(self, name: str) -> dict[str, Any] | None:
        store = self._store()
        record = await store.run(revoke_token, store.db, name)
        self._generation += 1
        for key in [k for k, (p, _) in self._cache.items() if p.name == name]:
            del self._cache[key]
        return record

    async def principal_for(self, given: bytes) -> Principal | None:
        """The principal of a presented bearer token, or None (unknown, revoked, or not a token's shape)."""
        try:
            text = given.decode("ascii")
        except UnicodeDecodeError:
            return None
        if not TOKEN_RE.match(text) or self.store is None:
            return None
        key = hash_token(text)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._cache[key]
        generation = self._generation
        principal = await self.store.run(find_token, self.store.db, key)
        if principal is not None and generation == self._generation:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))  # the oldest entry
            self._cache[key] = (principal, now + CACHE_TTL)
        return principal


# --- routes -----------------------------------------------------------------------------------------------------


def add_routes(app: web.Application, registry: TokenRegistry) -> None:
    """POST/GET /api/v1/tokens and DELETE /api/v1/tokens/{name}; admin only (ari_app/admin/auth.py)."""

    async def create(request: web.Request) -> web.Response:
        try:
            # the bytes, not request.json() (an unknown declared charset was a 500); RecursionError: '[[[[...'
            data = json.loads(await request.read())
        except (ValueError, RecursionError):
            return _error(400, "body: expected a JSON object")
        try:
            record, token = await registry.create(data)
        except TokenError as exc:
            return _error(exc.status, str(exc))
        return web.json_response(record | {
            "token": token, "note": "the token is shown only now; Ringpool keeps only its SHA-256"},
            status=201, headers={"Cache-Control": "no-store"})

    async def list_all(_request: web.Request) -> web.Response:
        return web.json_response({"tokens": await registry.list()})

    async def revoke(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not NAME_RE.match(name):
            return _error(400, "name: 1-40 of a-z 0-9 _ . - (starting with a letter or digit)")
        record = await registry.revoke(name)
        if record is None:
            return _error(404, f"no active token {name}")
        return web.json_response({"revoked": name, "revoked_at": record["revoked_at"]})

    app.router.add_post("/api/v1/tokens", create)
    app.router.add_get("/api/v1/tokens", list_all)
    app.router.add_delete("/api/v1/tokens/{name}", revoke)
    openapi.add_paths(app, PATHS, schemas=SCHEMAS)


# --- the OpenAPI description of these routes -------------------------------------------------------------------


_NS = {"type": "string", "nullable": True}
_NTIME = {"type": "string", "format": "date-time", "nullable": True}
ADMIN_ONLY = {"401": _err("missing or invalid bearer token"),
              "403": _err("only admin tokens may use this operation")}
SCHEMAS: dict[str, Any] = {
    "ApiToken": {"type": "object", "required": ["name", "role", "created_at"], "properties": {
        "name": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
        "publisher": _NS,
        "campaigns": {"type": "array", "items": {"type": "string"}, "nullable": True,
                      "description": "publisher tokens: the campaigns whose calls it sees"},
        "created_at": {"type": "string", "format": "date-time"}, "last_used_at": _NTIME, "revoked_at": _NTIME}},
    "NewApiToken": {"type": "object", "required": ["name", "role"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN,
                 "description": "unique for good: a revoked token's name is not reused (config-admin and cli "
                                "are reserved)"},
        "role": {"type": "string", "enum": list(ROLES),
                 "description": "admin: everything; read_only: GET and HEAD (not tokens or the audit log); "
                                "publisher: GET its campaigns' calls (list, detail, CSV) only"},
        "campaigns": {"type": "array", "minItems": 1, "maxItems": MAX_CAMPAIGNS, "uniqueItems": True,
                      "items": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"},
                      "description": "required for publisher tokens, refused for the other roles"},
        "publisher": {"type": "string", "pattern": _PUBLISHER_LABEL_RE.pattern,
                      "description": "publisher tokens: a label (default: the name)"}}},
    "CreatedApiToken": {"allOf": [
        {"$ref": "#/components/schemas/ApiToken"},
        {"type": "object", "required": ["token", "note"], "properties": {
            "token": {"type": "string", "description": "the bearer token, shown only in this response"},
            "note": {"type": "string"}}}]},
}
PATHS: dict[str, Any] = {
    "/api/v1/tokens": {
        "get": {"operationId": "listTokens", "tags": ["security"],
                "summary": "API tokens with their roles, last use and revocation (never the tokens or their hashes)",
                "responses": {"200": _json({"type": "object", "required": ["tokens"], "properties": {
                    "tokens": {"type": "array", "items": {"$ref": "#/components/schemas/ApiToken"}}}},
                    "the tokens"), **ADMIN_ONLY}},
        "post": {"operationId": "createToken", "tags": ["security"],
                 "summary": "Create a token with a role; the token is in this response only",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/NewApiToken"}}}},
                 "responses": {"201": _json({"$ref": "#/components/schemas/CreatedApiToken"}, "created"),
                               "400": _err("invalid body; the message names the field"),
                               "409": _err("the name is taken (also by a revoked token)"), **ADMIN_ONLY}}},
    "/api/v1/tokens/{name}": {"delete": {
        "operationId": "revokeToken", "tags": ["security"],
        "summary": "Revoke a token: it is refused (401) from now on; its row stays for the audit trail",
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": NAME_PATTERN}}],
        "responses": {"200": _json({"type": "object", "required": ["revoked", "revoked_at"], "properties": {
            "revoked": {"type": "string"}, "revoked_at": {"type": "string", "format": "date-time"}}}, "revoked"),
            "400": _err("not a token name"), "404": _err("no active token of that name"), **ADMIN_ONLY}}},
}
