#!/usr/bin/env bash
# `make call NUMBER=...`: place one SIPp call from 127.0.0.1 (the sample trunk) and show its record.
set -euo pipefail
cd "$(dirname "$0")/.."
number="${1:?usage: call.sh NUMBER [HOLD_MS]}"
hold="${2:-4000}"
caller="${CALLER:-13126247788}"   # a valid-looking number: screening scores fictional 555 numbers
sip_port=$(.venv/bin/python -c "from ari_app.config import load_settings as l; print(l('${RINGPOOL_CONFIG:-config/ringpool.yaml}').asterisk.sip_port)")
admin_port=$(.venv/bin/python -c "from ari_app.config import load_settings as l; print(l('${RINGPOOL_CONFIG:-config/ringpool.yaml}').admin.port)")
echo "calling $number via 127.0.0.1:$sip_port, holding ${hold} ms after answer"
sipp "127.0.0.1:$sip_port" -sf tests/sipp/uac_call.xml -s "$number" -m 1 -d "$hold" -i 127.0.0.1 \
    -key caller "$caller" -key caller_name "Demo Caller" -key pai "\"Demo Caller\" <sip:$caller@127.0.0.1>" \
    -key privacy none -key diversion "<sip:13127834561@127.0.0.1>" -key charge "<sip:$caller@127.0.0.1>" \
    -timeout 60s -timeout_error -nostdin >/dev/null 2>&1 && echo "call completed" || echo "call did not complete (see the record)"
sleep 1
token=$(cat var/secrets/admin-token)
curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/api/v1/calls?number=$number&limit=1" \
    | .venv/bin/python -m json.tool
