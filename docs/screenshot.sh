#!/usr/bin/env bash
# Render the page of `dvc plots diff` or `dvc plots show` in headless Chromium and save a
# screenshot.
#   docs/screenshot.sh [PLOTS_DIR] [OUT_PNG]
# Needs Debian's chromium, and `make setup`: the page loads Vega from node_modules/, so it
# renders offline. The window is as tall as the page of `dvc plots diff` with two revisions.
set -euo pipefail
plots=$(realpath "${1:-dvc_plots}")
out=$(realpath -m "${2:-docs/report.png}")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1400,2640 --virtual-time-budget=5000 \
  --screenshot="$out" "file://$plots/index.html" 2>/dev/null
echo "wrote $out"
