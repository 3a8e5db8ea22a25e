#!/usr/bin/env bash
# Runs the web page's end-to-end tests in Debian's headless Chromium.
#
# Builds nothing: it uses target/debug/api (scripts/test builds it). Starts two
# api processes on free ports with fresh data directories — one with 1 MiB
# chunks, one with a 1 MiB file-size limit — runs tests/browser/*.test.js with
# node's test runner, and stops them. Screenshots go to tests/browser/artifacts/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
api=${PAN_API_BIN:-$root/target/debug/api}

say() { printf '[browser] %s\n' "$*" >&2; }

[ -x "$api" ] || { say "$api is missing: run cargo build --workspace --bins first"; exit 1; }
[ -x /usr/bin/chromium ] || { say "/usr/bin/chromium is missing: apt-get install -y chromium"; exit 1; }
[ -d "$here/node_modules/playwright-core" ] || { say "run npm ci in tests/browser first"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME VAR=VALUE…: starts an api and waits for its URL (left in $url).
start() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  env "$@" PAN_DATA_DIR="$work/$name" PAN_LISTEN=127.0.0.1:0 PAN_LOG="${PAN_LOG:-warn}" \
    "$api" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  url=''
  for _ in $(seq 300); do
    url=$(grep -o 'http://[^/ ]*/' "$work/$name.out" | head -1 || true)
    [ -n "$url" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    say "api ($name) did not start:"
    cat "$work/$name.err" >&2
    return 1
  fi
  url=${url%/}
}

start main PAN_CHUNK_SIZE=1048576
PAN_URL=$url
start small PAN_MAX_FILE_SIZE=1048576
PAN_SMALL_URL=$url
export PAN_URL PAN_SMALL_URL
export PAN_ARTIFACTS="$here/artifacts"
mkdir -p "$PAN_ARTIFACTS"
say "api at $PAN_URL (1 MiB chunks) and $PAN_SMALL_URL (1 MiB file limit)"

status=0
node --test --test-concurrency=1 --test-reporter=spec "$here"/*.test.js || status=$?
if [ "$status" -ne 0 ]; then
  for name in main small; do
    say "api ($name) log, last lines:"
    tail -n 40 "$work/$name.err" >&2 || true
  done
fi
exit "$status"
