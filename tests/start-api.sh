# Sourced by the test scripts that drive a live api (tests/clients, tests/fuzz).
# start_api [NAME=VALUE...]: starts target/debug/api on a free loopback port
# with a fresh data directory under $work and the given settings; sets `pid`
# (the caller's EXIT trap kills it) and `url` (`http://127.0.0.1:PORT/`).
start_api() {
  env PAN_DATA_DIR="$work/data" PAN_LISTEN=127.0.0.1:0 PAN_CHUNK_SIZE=1024 PAN_LOG=warn "$@" \
    "$root/target/debug/api" >"$work/api.out" 2>"$work/api.err" &
  pid=$!
  url=''
  for _ in $(seq 300); do
    url=$(grep -o 'http://[^/ ]*/' "$work/api.out" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$work/api.err"; echo "api did not start"; exit 1; }
}
