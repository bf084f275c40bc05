#!/usr/bin/env bash
# Installs the host packages labrunner needs, idempotently.
#
# QEMU must come from <codename>-backports: bookworm's QEMU 7.2 crashes on vCPU unplug
# (see README). The backports source reuses the mirror URI the machine already has in its
# apt sources, so no host name is ever written by this project.
set -euo pipefail

APT_ETC=${LABRUNNER_APT_ETC:-/etc/apt}  # another folder only for the set-up's own test

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

. /etc/os-release
codename=${VERSION_CODENAME:?cannot tell the Debian codename from /etc/os-release}
backports="$codename-backports"
qemu_min=10

packages=(busybox-static dropbear-bin gcc libc6-dev python3-venv kmod
          make flex bison bc libelf-dev libssl-dev xz-utils git ccache  # this line: kernel builds
          chromium)  # the report tests look at the pages in a real browser

# A backports line that is in force: commented-out lines do not count.
has_backports() {
    local files=() f
    for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources; do
        [ -e "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 1
    awk -v suite="$backports" '/^[[:space:]]*#/ { next } { for (i = 1; i <= NF; i++) if ($i == suite) found = 1 }
        END { exit !found }' "${files[@]}"
}

if [ "${1:-}" = "--has-backports" ]; then  # for the test of the line above
    has_backports
    exit
fi

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

qemu_major() {
    command -v qemu-system-x86_64 >/dev/null || { echo 0; return; }
    qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}

missing=()
for p in "${packages[@]}"; do have_pkg "$p" || missing+=("$p"); done
if [ "${#missing[@]}" = 0 ] && [ "$(qemu_major)" -ge "$qemu_min" ]; then
    exit 0
fi

# The first configured URI that serves the release itself (not -security, not -updates).
mirror_uri() {
    local f
    for f in "$APT_ETC"/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk -v suite="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; ok = 0; deb = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Types:.*(^|[ \t])deb([ \t]|$)/) deb = 1
                    if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
                }
                if (ok && deb && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f"
    done
    for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk -v suite="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++; if ($(i+1) == suite) { print $i; exit } }' "$f"
    done
}

if ! has_backports; then
    uri=$(mirror_uri | head -n 1)
    [ -n "$uri" ] || { echo "setup-host: no apt source for '$codename' to derive $backports from" >&2; exit 3; }
    echo "setup-host: adding $backports from the configured mirror $uri"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" "$backports" | $SUDO tee "$APT_ETC"/sources.list.d/labrunner-backports.sources >/dev/null
fi

echo "setup-host: installing ${missing[*]:-} qemu-system-x86/$backports qemu-utils/$backports"
$SUDO apt-get update -q
# Only QEMU comes from backports; everything else from the release itself. QEMU gets a line of its own
# with -t, which also lets apt take QEMU's dependencies (qemu-system-common, seabios, ...) from
# backports: "qemu-system-x86/$backports" alone leaves them at the release's versions, which the
# backported QEMU cannot use ("not installable").
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t "$backports" \
    qemu-system-x86 qemu-utils
if [ "$(qemu_major)" -lt "$qemu_min" ]; then
    echo "setup-host: qemu-system-x86_64 is older than $qemu_min after install" >&2
    exit 3
fi
