#!/usr/bin/env bash
# Ensure headless Chromium is available for the console's browser tests.
#
# Usage: scripts/chromium.sh
#   Prints nothing and exits 0 when chromium is on PATH. Otherwise, as root
#   with apt-get, installs the Debian packages chromium and chromium-driver
#   (apt-get update first when the package lists are stale). Without root or
#   apt it says so and exits 0: the browser tests then skip with a message,
#   the rest of `make test` still runs.
set -euo pipefail

PROG=chromium.sh
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

for bin in chromium chromium-browser google-chrome; do
	if command -v "$bin" >/dev/null 2>&1; then
		exit 0
	fi
done

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	log "chromium not found and cannot install it (needs root and apt-get): the console's browser tests will skip"
	log "install it with: apt-get install chromium chromium-driver"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "chromium not found; installing chromium and chromium-driver with apt-get"
if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >&2; then
	apt-get update -q >&2
	if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >&2; then
		log "apt-get install chromium failed: the console's browser tests will skip"
		exit 0
	fi
fi
command -v chromium >/dev/null 2>&1 || log "chromium installed but not on PATH: the browser tests will skip"
