#!/usr/bin/env bash
# Render the report of `dvc plots diff` in headless Chromium and save a screenshot.
#   docs/screenshot.sh [PLOTS_DIR] [OUT_PNG]
# Needs Debian's chromium and npm. DVC's page loads Vega from a CDN; the page rendered
# here uses the same versions, fetched once from the npm registry, so it works offline.
set -euo pipefail
plots=$(realpath "${1:-dvc_plots}")
out=$(realpath -m "${2:-docs/report.png}")
vendor=$(mktemp -d)
trap 'rm -rf "$vendor"' EXIT
for pkg in $(grep -o 'https://cdn.jsdelivr.net/npm/[a-z-]*@[0-9.]*' "$plots/index.html" | sort -u); do
  spec=${pkg#https://cdn.jsdelivr.net/npm/}
  name=${spec%@*}
  tarball=$(cd "$vendor" && npm pack --silent "$spec")
  mkdir "$vendor/$name" && tar xzf "$vendor/$tarball" -C "$vendor/$name"
  cp "$vendor/$name/package/build/$name.min.js" "$plots/"
  sed_args+=(-e "s#$pkg#$name.min.js#")
done
sed "${sed_args[@]}" "$plots/index.html" > "$plots/offline.html"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$vendor/profile" --window-size=1400,2400 --virtual-time-budget=5000 \
  --screenshot="$out" "file://$plots/offline.html" 2>/dev/null
echo "wrote $out"
