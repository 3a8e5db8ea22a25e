#!/usr/bin/env bash
# Fuzzes a live embedded api against the spec it serves with schemathesis
# (PyPI, pinned in tests/fuzz/requirements.txt, in a virtualenv under target/
# that scripts/deps makes): every phase (examples, coverage, fuzzing,
# stateful), every check, a fixed seed and a bounded number of cases per
# operation. Any failure fails the run. The few checks switched off for one
# operation are in tests/fuzz/schemathesis.toml, each with its reason, and in
# the README ("The spec, as a fuzzer reads it").
#
#   tests/fuzz/run.sh            (scripts/test fuzz runs it)
#   tests/fuzz/run.sh ARGS...    more arguments for `st run`, e.g.
#                                --include-operation-id upload_part
#   PAN_FUZZ_EXAMPLES=N          cases per operation and phase (default 25)
#   PAN_FUZZ_SEED=N              the seed (default 22)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/target/fuzz-venv
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$root/scripts/deps" fuzz

metrics_token=fuzz-metrics-$RANDOM$RANDOM
export PAN_FUZZ_METRICS_TOKEN=$metrics_token
# Rate limits off: the fuzzer signs in and up far more often than a person.
. "$root/tests/start-api.sh"
start_api PAN_SIGNIN_RATE=0 PAN_SIGNIN_USER_RATE=0 PAN_SIGNUP_RATE=0 PAN_METRICS_TOKEN="$metrics_token"
url=${url%/}

# token NAME: signs NAME up (password "fuzz-password") and prints a bearer token.
token() {
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"fuzz-password\"}" "$url/usr/signup"
  curl -fsS -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"fuzz-password\"}" "$url/usr/signin" |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
# One account for everything; signout and signout_everywhere get accounts of
# their own (they revoke the token they carry, or every token of its user, and
# the rest of the run would be 401s).
PAN_FUZZ_TOKEN=$(token fuzz)
PAN_FUZZ_SIGNOUT_TOKEN=$(token fuzz-signout)
PAN_FUZZ_EVERYWHERE_TOKEN=$(token fuzz-everywhere)
export PAN_FUZZ_TOKEN PAN_FUZZ_SIGNOUT_TOKEN PAN_FUZZ_EVERYWHERE_TOKEN

# The served spec must be the committed one (tests/e2e/openapi.rs checks it
# too): fuzz what clients are generated from.
curl -fsS "$url/openapi.json" >"$work/served.json"
[ "$(cat "$work/served.json")" = "$(cat "$root/openapi/openapi.json")" ] ||
  { echo "the served spec differs from openapi/openapi.json: regenerate it"; exit 1; }

cd "$work"
# Every check runs: schemathesis enables them all by default. (`--checks all`
# on the command line would also turn back on the few that
# tests/fuzz/schemathesis.toml switches off for one operation.)
fuzz() {
  "$venv/bin/st" --no-color --config-file "$root/tests/fuzz/schemathesis.toml" run "$root/openapi/openapi.json" \
    --url "$url" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${PAN_FUZZ_EXAMPLES:-25}" \
    --seed "${PAN_FUZZ_SEED:-22}" \
    --workers 2 \
    --report junit --report-dir "$work/report" "$@" 2>&1 | tee "$work/st.out"
  return "${PIPESTATUS[0]}"
}
found() { echo "schemathesis found disagreements between the spec and the server (above)"; tail -20 "$work/api.err"; exit 1; }
if ! fuzz "$@"; then
  # A crash of the tool itself (a "Runtime Error" section, no failed check:
  # seen once from hypothesis's lambda-source cache) is no finding: once more.
  if grep -q 'Runtime Error' "$work/st.out" && ! grep -q '= FAILURES =' "$work/st.out"; then
    echo "schemathesis crashed inside itself without a finding: running it once more"
    fuzz "$@" || found
  else
    found
  fi
fi
