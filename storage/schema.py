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
]
