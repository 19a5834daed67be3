#!/usr/bin/env bash
# `make run`: the sample configuration with the bundled Asterisk, plus a demo desk (a SIPp UAS on
# 127.0.0.1:5080 that answers every call) so a first call has somewhere to go. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${RINGPOOL_CONFIG:-config/ringpool.yaml}"
mkdir -p var/log

desk_pid=""
if [[ "${RINGPOOL_DEMO_DESK:-1}" == "1" ]]; then
    sipp -sn uas -i 127.0.0.1 -p 5080 -mp 6100 -nostdin >var/log/demo-desk.log 2>&1 &
    desk_pid=$!
fi
cleanup() { [[ -n "$desk_pid" ]] && kill "$desk_pid" 2>/dev/null || true; }
trap cleanup EXIT

# The app runs in the background so that a signal sent to this script alone (a supervisor's TERM, not only a
# terminal's Ctrl-C to the whole group) reaches it; the app then stops Asterisk itself.
.venv/bin/python -m ari_app --config "$config" run &
app_pid=$!
trap 'kill -TERM "$app_pid" 2>/dev/null || true' INT TERM
wait "$app_pid" || true
wait "$app_pid" 2>/dev/null || true
