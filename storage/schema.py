"""Versioned schema migrations, applied in order at start. Later features append; never edit a landed one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "campaigns, numbers, destinations, calls, legs, events", """
CREATE TABLE destinations (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('sip', 'trunk')),
    dial_string TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE campaigns (
    name TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    destination TEXT NOT NULL,
    greeting TEXT,
    ring_timeout INTEGER NOT NULL,
    fallback_destination TEXT,
    fallback_message TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE TABLE tracking_numbers (
    number TEXT PRIMARY KEY,
    campaign TEXT REFERENCES campaigns(name),
    active INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    inbound_channel TEXT NOT NULL,
    state TEXT NOT NULL,
    disposition TEXT,
    caller_number TEXT,
    caller_name TEXT,
    dialed_number TEXT,
    trunk TEXT,
    p_asserted_identity TEXT,
    privacy TEXT,
    diversion TEXT,
    p_charge_info TEXT,
    campaign TEXT,
    destination TEXT,
    decision TEXT,
    decision_reasons TEXT,
    decision_latency_ms REAL,
    arrived_at TEXT NOT NULL,
    answered_at TEXT,
    destination_answered_at TEXT,
    bridged_at TEXT,
    ended_at TEXT,
    ring_seconds REAL,
    talk_seconds REAL,
    total_seconds REAL,
    hangup_cause INTEGER,
    hangup_cause_text TEXT,
    hangup_side TEXT,
    end_observed TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX calls_arrived ON calls (arrived_at, id);
CREATE INDEX calls_campaign ON calls (campaign, arrived_at);
CREATE INDEX calls_dialed ON calls (dialed_number, arrived_at);
CREATE INDEX calls_disposition ON calls (disposition, arrived_at);
CREATE INDEX calls_open ON calls (ended_at) WHERE ended_at IS NULL;
CREATE TABLE call_legs (
    channel_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    role TEXT NOT NULL,
    destination TEXT,
    dial_string TEXT,
    created_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT,
    dial_status TEXT,
    hangup_cause INTEGER,
    hangup_cause_text TEXT
);
CREATE INDEX call_legs_call ON call_legs (call_id);
CREATE TABLE call_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL REFERENCES calls(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT
);
CREATE INDEX call_events_call ON call_events (call_id, id);
"""),
    (2, "detections: per-call detection log and flags on the call", """
CREATE TABLE call_detections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL REFERENCES calls(id),
    leg TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_s REAL,
    duration_s REAL,
    at TEXT NOT NULL,
    details TEXT
);
CREATE INDEX call_detections_call ON call_detections (call_id, id);
ALTER TABLE calls ADD COLUMN detection_path TEXT;
ALTER TABLE calls ADD COLUMN fax_detected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN modem_detected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN voice_detected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN silence_detected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN machine_dtmf INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN dtmf_digits TEXT;
ALTER TABLE calls ADD COLUMN transcript TEXT;
ALTER TABLE calls ADD COLUMN keywords TEXT;
ALTER TABLE calls ADD COLUMN amd_result TEXT;
"""),
    (3, "test accounts: test calls marked on the record, accounts created through the API, security events, bans", """
ALTER TABLE calls ADD COLUMN is_test INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN test_account TEXT;
CREATE INDEX calls_test ON calls (is_test, arrived_at);
CREATE TABLE test_accounts (
    username TEXT PRIMARY KEY,
    password_digest TEXT NOT NULL,
    caller_number TEXT NOT NULL,
    caller_name TEXT NOT NULL DEFAULT '',
    headers TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    address TEXT,
    account TEXT,
    service TEXT,
    details TEXT
);
CREATE INDEX security_events_at ON security_events (at, id);
CREATE INDEX security_events_address ON security_events (address, at);
CREATE TABLE security_bans (
    address TEXT PRIMARY KEY,
    banned_at TEXT NOT NULL,
    until TEXT NOT NULL,
    failures INTEGER NOT NULL,
    reason TEXT
);
"""),
    (4, "pools, visitor sessions, extensions, clients, call attribution, outbox", """
ALTER TABLE tracking_numbers ADD COLUMN pool TEXT;
ALTER TABLE tracking_numbers ADD COLUMN role TEXT NOT NULL DEFAULT 'static';
ALTER TABLE tracking_numbers ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE tracking_numbers ADD COLUMN state_changed_at TEXT;
ALTER TABLE tracking_numbers ADD COLUMN lease_key TEXT;
ALTER TABLE tracking_numbers ADD COLUMN session_id TEXT;
ALTER TABLE tracking_numbers ADD COLUMN leased_at TEXT;
ALTER TABLE tracking_numbers ADD COLUMN last_activity_at TEXT;
ALTER TABLE tracking_numbers ADD COLUMN cooldown_until TEXT;
ALTER TABLE tracking_numbers ADD COLUMN lease_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tracking_numbers ADD COLUMN last_call_at TEXT;
CREATE UNIQUE INDEX tracking_numbers_lease ON tracking_numbers (pool, lease_key) WHERE state = 'leased';
CREATE INDEX tracking_numbers_pool ON tracking_numbers (pool, state, state_changed_at);
CREATE TABLE number_state_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL,
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    pool TEXT,
    session_id TEXT,
    reason TEXT NOT NULL
);
CREATE INDEX number_state_log_number ON number_state_log (number, id);
CREATE TABLE pool_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pool TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX pool_alerts_pool ON pool_alerts (pool, id);
CREATE TABLE visitor_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    campaign TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    lease_key TEXT,
    number TEXT,
    extension TEXT,
    referrer TEXT,
    referrer_host TEXT,
    landing_page TEXT,
    current_page TEXT,
    page_title TEXT,
    pages_viewed INTEGER NOT NULL DEFAULT 0,
    pages TEXT,
    utm_source TEXT,
    utm_medium TEXT,
    utm_campaign TEXT,
    utm_term TEXT,
    utm_content TEXT,
    gclid TEXT,
    fbclid TEXT,
    msclkid TEXT,
    keyword TEXT,
    p1 TEXT,
    p2 TEXT,
    p3 TEXT,
    device TEXT,
    device_type TEXT,
    ga_client_id TEXT,
    vars TEXT,
    clicks INTEGER NOT NULL DEFAULT 0,
    last_click_at TEXT
);
CREATE INDEX visitor_sessions_pool ON visitor_sessions (pool, last_seen_at);
CREATE TABLE extension_leases (
    pool TEXT NOT NULL,
    extension INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    leased_at TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    PRIMARY KEY (pool, extension)
);
CREATE UNIQUE INDEX extension_leases_session ON extension_leases (pool, session_id);
CREATE TABLE clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    caller_number TEXT NOT NULL UNIQUE,
    first_call_at TEXT NOT NULL,
    last_call_at TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    last_session_id TEXT
);
ALTER TABLE calls ADD COLUMN client_id INTEGER;
ALTER TABLE calls ADD COLUMN repeat_caller INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN pool TEXT;
ALTER TABLE calls ADD COLUMN number_state TEXT;
ALTER TABLE calls ADD COLUMN extension TEXT;
ALTER TABLE calls ADD COLUMN session_id TEXT;
ALTER TABLE calls ADD COLUMN attribution_method TEXT;
ALTER TABLE calls ADD COLUMN attribution_confidence TEXT;
ALTER TABLE calls ADD COLUMN attribution_details TEXT;
ALTER TABLE calls ADD COLUMN source TEXT;
ALTER TABLE calls ADD COLUMN medium TEXT;
ALTER TABLE calls ADD COLUMN ad_campaign TEXT;
ALTER TABLE calls ADD COLUMN keyword TEXT;
ALTER TABLE calls ADD COLUMN landing_page TEXT;
ALTER TABLE calls ADD COLUMN referrer TEXT;
ALTER TABLE calls ADD COLUMN gclid TEXT;
ALTER TABLE calls ADD COLUMN ga_client_id TEXT;
ALTER TABLE calls ADD COLUMN marketing TEXT;
ALTER TABLE calls ADD COLUMN converted_at TEXT;
ALTER TABLE calls ADD COLUMN conversion_name TEXT;
ALTER TABLE calls ADD COLUMN conversion_value REAL;
ALTER TABLE calls ADD COLUMN conversion_currency TEXT;
ALTER TABLE calls ADD COLUMN spam INTEGER NOT NULL DEFAULT 0;
CREATE INDEX calls_caller ON calls (caller_number, arrived_at);
CREATE INDEX calls_session ON calls (session_id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    event TEXT NOT NULL,
    call_id TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    dead_at TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
"""),
    (5, "screening: block and allow lists, quarantine, scores and factors on the call", """
CREATE TABLE screen_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list TEXT NOT NULL CHECK (list IN ('block', 'allow')),
    kind TEXT NOT NULL CHECK (kind IN ('number', 'prefix', 'range', 'name', 'anonymous', 'charge')),
    value TEXT NOT NULL,
    value_end TEXT,
    campaign TEXT,
    expires_at TEXT,
    reason TEXT,
    source TEXT NOT NULL DEFAULT 'api',
    created_at TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_hit_at TEXT
);
CREATE INDEX screen_rules_lookup ON screen_rules (kind, value);
CREATE UNIQUE INDEX screen_rules_unique ON screen_rules (list, kind, value, IFNULL(value_end, ''), IFNULL(campaign, ''));
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    caller TEXT NOT NULL,
    number TEXT NOT NULL,
    number_state TEXT NOT NULL,
    call_id TEXT,
    at TEXT NOT NULL
);
CREATE INDEX quarantine_caller ON quarantine (caller, at);
CREATE TABLE signatures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT,
    fingerprint BLOB NOT NULL,
    created_at TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_hit_at TEXT
);
CREATE TABLE campaign_levels (
    campaign TEXT PRIMARY KEY,
    level INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    reason TEXT
);
ALTER TABLE calls ADD COLUMN score1 INTEGER;
ALTER TABLE calls ADD COLUMN score1_color TEXT;
ALTER TABLE calls ADD COLUMN score2 INTEGER;
ALTER TABLE calls ADD COLUMN screening TEXT;
ALTER TABLE calls ADD COLUMN candidate INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN spam_reason TEXT;
ALTER TABLE calls ADD COLUMN challenge TEXT;
CREATE INDEX calls_spam ON calls (spam, arrived_at);
"""),
    (6, "announcement signatures: every call's opening fingerprint, kept a while to learn from later spam marks", """
CREATE TABLE call_openings (
    call_id TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX call_openings_at ON call_openings (at);
CREATE UNIQUE INDEX signatures_call ON signatures (call_id);
"""),
    (7, "API tokens with roles (admin, read_only, publisher), stored as SHA-256; the audit log of changes", """
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'read_only', 'publisher')),
    publisher TEXT,
    campaigns TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT,
    role TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    target TEXT,
    details TEXT,
    remote TEXT
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
"""),
    (8, "pool lease lookups: the oldest lease and the least active one without reading every leased row", """
CREATE INDEX tracking_numbers_leased_at ON tracking_numbers (pool, leased_at) WHERE state = 'leased';
CREATE INDEX tracking_numbers_reassign ON tracking_numbers (pool, lease_calls, last_activity_at, number)
    WHERE state = 'leased';
CREATE INDEX tracking_numbers_inventory ON tracking_numbers (state_changed_at, number) WHERE state = 'inventory';
"""),
    (9, "screening at a million rules: rule lookups lead with the kind, spam history by caller", """
DROP INDEX screen_rules_unique;
CREATE UNIQUE INDEX screen_rules_unique ON screen_rules (kind, list, value, IFNULL(value_end, ''), IFNULL(campaign, ''));
CREATE INDEX calls_caller_spam ON calls (caller_number) WHERE spam = 1;
"""),
    (10, "IVR answers, call quality, routing and bids, queue, recording, payouts", """
ALTER TABLE calls ADD COLUMN flow TEXT;
ALTER TABLE calls ADD COLUMN ivr_path TEXT;
ALTER TABLE calls ADD COLUMN ivr_answers TEXT;
ALTER TABLE calls ADD COLUMN tags TEXT;
ALTER TABLE calls ADD COLUMN quality INTEGER;
ALTER TABLE calls ADD COLUMN quality_factors TEXT;
ALTER TABLE calls ADD COLUMN region TEXT;
ALTER TABLE calls ADD COLUMN number_type TEXT;
ALTER TABLE calls ADD COLUMN route_strategy TEXT;
ALTER TABLE calls ADD COLUMN route_reasons TEXT;
ALTER TABLE calls ADD COLUMN bids TEXT;
ALTER TABLE calls ADD COLUMN buyer TEXT;
ALTER TABLE calls ADD COLUMN winning_bid REAL;
ALTER TABLE calls ADD COLUMN caller_id_presented TEXT;
ALTER TABLE calls ADD COLUMN queued_at TEXT;
ALTER TABLE calls ADD COLUMN queue_seconds REAL;
ALTER TABLE calls ADD COLUMN recording TEXT;
ALTER TABLE calls ADD COLUMN recording_seconds REAL;
ALTER TABLE calls ADD COLUMN voicemail TEXT;
ALTER TABLE calls ADD COLUMN sale_amount REAL;
ALTER TABLE calls ADD COLUMN revenue REAL;
ALTER TABLE calls ADD COLUMN payout REAL;
ALTER TABLE calls ADD COLUMN margin REAL;
ALTER TABLE calls ADD COLUMN payout_details TEXT;
ALTER TABLE call_legs ADD COLUMN buyer TEXT;
CREATE INDEX call_legs_destination ON call_legs (destination, answered_at) WHERE answered_at IS NOT NULL;
CREATE INDEX calls_buyer ON calls (buyer, arrived_at) WHERE buyer IS NOT NULL;
"""),
    (11, "calls Ringpool places: click-to-call and callbacks (the visitor first, then the business)", """
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
"""),
]
