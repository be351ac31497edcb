#!/usr/bin/env bash
# Screenshots a fleetcal report.html with headless Chromium and checks that
# every picture of the page loaded.
#
#   scripts/screenshot_report.sh out/fashion-mnist/report.html [shot.png]
#
# The screenshot (1200 x 2400 CSS pixels, default REPORT minus .html plus
# .png) shows what a reader sees first. The check loads the page a second
# time and dumps its DOM: each <img> of the page counts itself in the
# body's data-loaded when it loads and adds class "broken" to the body when
# it fails, so the page is good when data-loaded equals data-images and
# the body is not broken. Chromium runs offline-minded (no background
# networking, component updates or sync) with a throwaway profile.
#
# Needs Debian's chromium package (apt-get install -y chromium), or
# CHROMIUM=/path/to/chrome. Exits 0 when the page is good, 1 when it is
# not, 2 when it cannot check.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 REPORT.html [SCREENSHOT.png]" >&2
	exit 2
fi
page=$1
shot=${2:-${page%.html}.png}
if [ ! -f "$page" ]; then
	echo "$page: no such file" >&2
	exit 2
fi
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
	echo "chromium not found: apt-get install -y chromium, or set CHROMIUM" >&2
	exit 2
fi

abs=$(realpath "$page")
# A file URL: percent-encode what a path may hold that a URL may not.
url="file://$(printf '%s' "$abs" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/#/%23/g' -e 's/?/%3F/g')"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {
	local profile
	profile=$(mktemp -d "$work/profile.XXXXXX")
	timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=5000 "$@" "$url"
}

rm -f "$shot"
if ! run --screenshot="$shot" --window-size=1200,2400 >"$work/shot.log" 2>&1 || [ ! -s "$shot" ]; then
	echo "$page: chromium wrote no screenshot:" >&2
	tail -n 20 "$work/shot.log" >&2
	exit 1
fi
if [ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then
	echo "$shot: not a PNG" >&2
	exit 1
fi

if ! run --dump-dom >"$work/dom.html" 2>"$work/dom.log"; then
	echo "$page: chromium could not dump the DOM:" >&2
	tail -n 20 "$work/dom.log" >&2
	exit 1
fi
body=$(grep -o '<body[^>]*>' "$work/dom.html" | head -n 1 || true)
attr() { printf '%s' "$body" | sed -n "s/.* $1=\"\\([^\"]*\\)\".*/\\1/p"; }
images=$(attr data-images)
loaded=$(attr data-loaded)
broken=$(attr data-broken)
if [ -z "$images" ]; then
	echo "$page: the body has no data-images: not a fleetcal report, or its script did not run" >&2
	exit 1
fi
if printf '%s' "$(attr class)" | grep -qw broken; then
	echo "$page: a picture failed to load: $broken ($loaded of $images loaded)" >&2
	exit 1
fi
if [ "$loaded" != "$images" ]; then
	echo "$page: $loaded of $images pictures loaded" >&2
	exit 1
fi
echo "ok: $loaded of $images pictures loaded; screenshot $shot"
