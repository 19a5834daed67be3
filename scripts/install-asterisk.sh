#!/usr/bin/env bash
# Build (or reuse) the bundled Asterisk: Asterisk 22 from Debian unstable in a debootstrap root
# kept outside the repository. Run through the root's own loader, with no chroot and no mounts.
#
#   RINGPOOL_ASTERISK_ROOT  where the root lives (default ~/.cache/ringpool/asterisk-root)
#   RINGPOOL_DEBIAN_MIRROR  mirror to use (default: the first URIs: of this machine's apt sources)
set -euo pipefail

root="${RINGPOOL_ASTERISK_ROOT:-$HOME/.cache/ringpool/asterisk-root}"
stamp="$root/.ringpool-complete"
packages="asterisk,asterisk-modules,asterisk-core-sounds-en-gsm"

if [[ -f "$stamp" ]]; then
    echo "bundled Asterisk: reusing $root ($(cat "$stamp"))"
    exit 0
fi

mirror="${RINGPOOL_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
fi
if [[ -z "$mirror" ]]; then
    mirror=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
fi
if [[ -z "$mirror" ]]; then
    echo "install-asterisk: no Debian mirror found in the apt sources; set RINGPOOL_DEBIAN_MIRROR" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "install-asterisk: debootstrap is missing (make deps installs it)" >&2
    exit 1
fi

echo "bundled Asterisk: building $root from $mirror (sid), this takes a minute or two"
rm -rf "$root.partial"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include="$packages" sid "$root.partial" "$mirror" >"$root.partial.log" 2>&1 || {
    echo "install-asterisk: debootstrap failed, last lines of $root.partial.log:" >&2
    tail -n 20 "$root.partial.log" >&2
    exit 1
}

# The sounds folder is an absolute link through /etc/alternatives, which points outside the root when
# Asterisk runs without chroot: repoint it at the root's own Allison prompts.
sounds="$root.partial/usr/share/asterisk/sounds"
if [[ -d "$sounds/en_US_f_Allison" ]]; then
    rm -f "$sounds/en"
    ln -s en_US_f_Allison "$sounds/en"
fi

rm -rf "$root.partial/var/cache/apt/archives/"*.deb
version=$(ls "$root.partial/var/lib/dpkg/info/" >/dev/null; \
          grep -A8 '^Package: asterisk$' "$root.partial/var/lib/dpkg/status" | awk '/^Version:/ {print $2}')
rm -rf "$root"
mv "$root.partial" "$root"
mv "$root.partial.log" "$root/.ringpool-build.log"
echo "asterisk $version" >"$stamp"
echo "bundled Asterisk: ready in $root (asterisk $version)"
