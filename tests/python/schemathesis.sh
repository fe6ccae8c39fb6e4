#!/usr/bin/env bash
# Checks the API against its own /openapi.json with schemathesis: every check (`--checks all`:
# no 5xx, status codes, content types, response schemas and headers as documented, schema-valid
# requests accepted, schema-violating ones rejected, auth not ignored, …), 0 failures.
#
#   tests/python/schemathesis.sh STADTPULS_BINARY [MAX_EXAMPLES]
#
# A fresh database gets the simulator's registry (parking sites, buildings, rooms, devices) and
# a few hundred simulated uplinks (published through Mosquitto, stored by `stadtpuls ingest`);
# then `stadtpuls api` serves it on a free port, and schemathesis (pinned in
# schemathesis-requirements.txt, installed into target/py-schemathesis) sends every operation
# at most MAX_EXAMPLES (default 25) generated requests per phase, one worker, a fixed seed
# (STADTPULS_SCHEMATHESIS_SEED overrides it), with an admin key so that private routes are
# exercised too; path parameters are mostly the seeded ids. The few rules the document cannot
# state (a window's length, one geo selection, closed rings, …) are listed in
# schemathesis_hooks.py, whose check replaces the built-in positive_data_acceptance. The event stream (/v1/stream) is left
# out: it answers 200 and stays open, which a request-per-example fuzzer can only time out on.
# Everything it started is stopped and the database dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
here="$(pwd)/tests/python"

bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
examples="${2:-25}"
admin_url="${STADTPULS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log() { printf '[schemathesis] %s\n' "$*" >&2; }
die() { printf '[schemathesis] error: %s\n' "$*" >&2; exit 1; }

py="$(tests/python/setup_venv.sh target/py-schemathesis tests/python/schemathesis-requirements.txt | tail -n 1)"
st="$(dirname "$py")/schemathesis"

id="$$_$(date +%s)"
db="stadtpuls_test_schemathesis_$id"
work="$(mktemp -d)"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS [JSON-CONDITION]
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if body="$(curl -fs "$1" 2>/dev/null)"; then
      [ -z "${3:-}" ] && return 0
      "$py" -c "import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if ($3) else 1)" "$body" && return 0
    fi
    sleep 0.2
  done
  return 1
}

psql "$admin_url" -qc "CREATE DATABASE \"$db\""
port="$(free_port)"
ops_port="$(free_port)"
export STADTPULS__DATABASE__URL="${admin_url%/*}/$db"
export STADTPULS__HTTP__LISTEN="127.0.0.1:$port"
export STADTPULS__HTTP__RATE_LIMIT_PER_SECOND=0
export STADTPULS__INGEST__OPS_LISTEN="127.0.0.1:$ops_port"
export STADTPULS__MQTT__TOPIC_PREFIX="stadtpuls-schemathesis/$id/"
export STADTPULS__MQTT__CLIENT_ID="stadtpuls-schemathesis-$id"
export STADTPULS__MQTT__CLEAN_SESSION=true
export STADTPULS__SIMULATOR__REGISTRY_FILE="$work/registry.geojson"
# The demo's open-data datasets, so that the catalogue, dataset, manifest and file routes have
# something to answer with (one export run below writes real files).
export STADTPULS_CONFIG="$PWD/scripts/demo.toml"
export STADTPULS__OPENDATA__OUTPUT_DIR="$work/opendata"
export STADTPULS__LOG__LEVEL="${STADTPULS_SCHEMATHESIS_LOG:-warn}"

log "seeding $db: the simulator's registry and 400 uplinks"
"$bin" migrate >/dev/null
"$bin" simulate --registry-only >/dev/null
"$bin" places import "$work/registry.geojson" >/dev/null
"$bin" devices import "$work/registry.geojson" >/dev/null
"$bin" ingest >"$work/ingest.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$ops_port/health" 30 'd["ingest"]["subscribed"] is True' \
  || { cat "$work/ingest.log" >&2; die "ingest did not subscribe"; }
"$bin" simulate --rate 400 --max-messages 400 >/dev/null
readings=0
for _ in $(seq 1 100); do
  readings="$(psql "$STADTPULS__DATABASE__URL" -Atc 'SELECT count(*) FROM readings')"
  [ "$readings" -ge 300 ] && break
  sleep 0.2
done
[ "$readings" -ge 300 ] || die "only $readings readings stored"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

key="$("$bin" keys create --admin --label schemathesis | grep '^sp_')"

# One export of the parking dataset over the day of the seeded readings: real files and a
# manifest for the open-data routes (their names and paths go into the dictionaries below).
"$bin" export run --dataset parking_occupancy \
  --from "$(date -u -d '-1 day' +%Y-%m-%dT%H:00:00Z)" --to "$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)" >/dev/null
files="$(cd "$work/opendata" && find . -type f ! -name '.*' | sed 's|^\./||' | sort | head -n 12)"
[ -n "$files" ] || die "the export wrote no files"

# Path parameters are drawn from the seeded ids most of the time (else generated), so that
# requests get past "not found" into the handlers.
ids() { psql "$STADTPULS__DATABASE__URL" -Atc "SELECT coalesce(json_agg(v), '[]') FROM ($1) q(v)"; }
cat >"$work/schemathesis.toml" <<TOML
[dictionaries]
dev_euis = { values = $(ids "SELECT lpad(to_hex(dev_eui), 16, '0') FROM devices ORDER BY visibility, dev_eui LIMIT 8") }
sites = { values = $(ids "SELECT uid FROM parking_sites ORDER BY uid LIMIT 5") }
buildings = { values = $(ids "SELECT id FROM buildings ORDER BY id LIMIT 3") }
rooms = { values = $(ids "SELECT id FROM rooms ORDER BY building_id, id LIMIT 8") }
datasets = { values = ["parking_occupancy", "climate_hourly", "building_climate_hourly"] }
files = { values = $("$py" -c 'import json, sys; print(json.dumps(sys.argv[1].split()))' "$files") }

[parameters]
"path.dev_eui" = { dictionary = "dev_euis", probability = 0.7 }
"path.uid" = { dictionary = "sites", probability = 0.7 }
"path.id" = { dictionary = "buildings", probability = 0.7 }
"path.room" = { dictionary = "rooms", probability = 0.7 }
"path.name" = { dictionary = "datasets", probability = 0.7 }
"path.path" = { dictionary = "files", probability = 0.7 }
TOML
"$bin" api >"$work/api.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$port/health" 30 || { cat "$work/api.log" >&2; die "the API did not come up"; }

log "$readings readings; fuzzing http://127.0.0.1:$port/openapi.json, at most $examples examples per operation and phase"
start=$(date +%s)
status=0
# From the scratch directory: schemathesis keeps a cache in ./.schemathesis.
(cd "$work" && PYTHONPATH="$here" SCHEMATHESIS_HOOKS=schemathesis_hooks "$st" --no-color --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --workers 1 \
  --max-examples "$examples" \
  --seed "${STADTPULS_SCHEMATHESIS_SEED:-20240501}" \
  --phases examples,coverage,fuzzing \
  --exclude-path /v1/stream \
  --header "Authorization: Bearer $key" \
  --request-timeout 30 \
  --max-redirects 0 \
  --generation-database none 2>&1) || status=$?
log "finished in $(( $(date +%s) - start )) s (exit $status)"
if [ "$status" -ne 0 ]; then
  log "API log (5xx are logged with their cause):"
  grep -E 'ERROR|WARN' "$work/api.log" | tail -n 40 >&2 || true
fi
exit "$status"
