#!/bin/sh
# A report page from a real run, screenshotted by headless Chromium
# (Debian's `chromium` package), to look at as a person would:
#   sh docs/pictures/screenshot.sh [out.png]
set -e
nnc=${NNC:-target/release/nnc}
out=${1:-docs/pictures/report.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$nnc run examples/penguins.nn examples/penguins.csv --quiet --report "$tmp/report.html" > /dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --window-size=1200,3000 --screenshot="$out" "file://$tmp/report.html"
