#!/usr/bin/env bash
# Fetch Debian's prometheus package and unpack it without installing it (no service, no postinst),
# so tests can run the real server on loopback. Idempotent: a second run reuses what is there.
#
# Usage: scripts/fetch-prometheus.sh [DEST]      (default: .cache/prometheus under the repository)
# Prints the path of the prometheus binary on stdout; progress goes to stderr.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo_root/.cache/prometheus}"
bin="$dest/usr/bin/prometheus"

if [[ -x "$bin" ]]; then
    echo "$bin"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch-prometheus: $tool not found (Debian/Ubuntu only)" >&2; exit 2; }
done

mkdir -p "$dest"
work="$(mktemp -d)"
chown _apt "$work" 2>/dev/null || true  # apt downloads as the unprivileged _apt user when it can
trap 'rm -rf "$work"' EXIT

# apt-get download writes into the current directory and needs package lists; refresh them only when the
# first attempt fails, because `apt-get update` is slow and needs root.
cd "$work"
if ! apt-get download prometheus >&2; then
    echo "fetch-prometheus: package lists look stale, running apt-get update" >&2
    apt-get update >&2
    apt-get download prometheus >&2
fi

deb=(prometheus_*.deb)
dpkg-deb -x "${deb[0]}" "$dest"
[[ -x "$bin" ]] || { echo "fetch-prometheus: $bin missing after extracting ${deb[0]}" >&2; exit 1; }
echo "fetch-prometheus: unpacked ${deb[0]} into $dest" >&2
echo "$bin"
