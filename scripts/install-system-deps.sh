#!/usr/bin/env bash
# Debian packages Ringpool needs: SIPp (sip-tester) for calls and tests, debootstrap for the bundled
# Asterisk, espeak-ng and sox for offline prompts and test audio, chromium (headless) for the web snippet's
# browser tests. Installs only what is missing.
set -euo pipefail

declare -A need=([sipp]=sip-tester [debootstrap]=debootstrap [espeak-ng]=espeak-ng [sox]=sox
                  [chromium]=chromium)
missing=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "install-system-deps: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
fi
