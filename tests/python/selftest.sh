#!/usr/bin/env bash
# Self-test of check_exports.py without the Rust exporter: a good sample must pass, and
# corrupted samples must be rejected.
#   tests/python/selftest.sh [PYTHON]     (default $STADTPULS_PY_READERS, else setup_venv.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${1:-${STADTPULS_PY_READERS:-}}"
[ -n "$py" ] || py="$("$here/setup_venv.sh" | tail -n 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$py" "$here/make_sample.py" "$tmp/good" "$tmp/good.json" >/dev/null
"$py" "$here/check_exports.py" "$tmp/good" "$tmp/good.json" >"$tmp/good.log" 2>&1 \
  || { cat "$tmp/good.log"; echo "selftest: the good sample was rejected" >&2; exit 1; }
echo "selftest: good sample: $(tail -n 1 "$tmp/good.log")"

for kind in rows deveui naive-ts naive-csv order; do
  "$py" "$here/make_sample.py" "$tmp/$kind" "$tmp/$kind.json" --corrupt "$kind" >/dev/null
  set +e
  "$py" "$here/check_exports.py" "$tmp/$kind" "$tmp/$kind.json" >"$tmp/$kind.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 1 ]; then
    cat "$tmp/$kind.log"
    echo "selftest: corruption '$kind' gave exit code $rc, expected 1" >&2
    exit 1
  fi
  echo "selftest: corruption '$kind' rejected: $(grep -m1 '^FAIL' "$tmp/$kind.log")"
done
echo "selftest: check_exports.py ok (good sample accepted, 5 corrupted samples rejected)"
