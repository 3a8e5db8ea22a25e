#!/usr/bin/env bash
# Generates a Python client from openapi/openapi.json with openapi-python-client
# (PyPI, pinned in tests/clients/requirements.txt, in a virtualenv under target/
# that scripts/deps makes) and drives a live api with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/target/client-venv
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$root/scripts/deps" client

# The generator runs ruff on what it writes: the venv's bin goes first on PATH.
PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate --path "$root/openapi/openapi.json" \
  --config "$root/tests/clients/generator.yaml" \
  --output-path "$work/pan_client" --overwrite >"$work/generate.log" 2>&1 || { cat "$work/generate.log"; exit 1; }
# A missing tool is a broken install step (scripts/deps client), not a spec problem.
if grep -qiE "not in PATH|command not found|No such file" "$work/generate.log"; then
  cat "$work/generate.log"
  echo "the generator could not run a tool it needs: the install step (scripts/deps client) is broken"
  exit 1
fi
# Any other warning is about the spec, and fails the run.
if grep -qi "warning" "$work/generate.log"; then cat "$work/generate.log"; echo "the generator warned about the spec"; exit 1; fi
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation "$work/pan_client"

. "$root/tests/start-api.sh"
start_api
"$venv/bin/python" "$root/tests/clients/python_smoke.py" "$url"
