#!/usr/bin/env bash
# Creates the Python venv with the open-data readers (pyarrow, DuckDB, pandas, GeoPandas) that
# tests/python/check_exports.py needs. Idempotent: pip runs only when the venv is missing or
# requirements.txt (or the Python version) changed since the last successful install.
#
#   tests/python/setup_venv.sh [VENV_DIR] [REQUIREMENTS]
#       (defaults target/py-readers and tests/python/requirements.txt; scripts/bench passes
#        bench/python/requirements.txt)
#
# Progress goes to stderr; the last line on stdout is the venv's python, so
#   STADTPULS_PY_READERS=$(tests/python/setup_venv.sh)
# works. Installing Debian's python3-venv is scripts/setup's job; this only checks for it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-target/py-readers}"
req="${2:-$here/requirements.txt}"
py="${PYTHON:-python3}"

log() { printf '[py-readers] %s\n' "$*" >&2; }
die() { printf '[py-readers] error: %s\n' "$*" >&2; exit 1; }

command -v "$py" >/dev/null 2>&1 || die "$py not found"
"$py" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$py has no working venv/ensurepip module; install Debian's python3-venv (scripts/setup does)"

mkdir -p "$(dirname "$venv")"
# One installer at a time for the same venv.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
fi

want="$( { cat "$req"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  log "up to date: $venv"
else
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || die "$venv exists and is not a venv; not touching it"
    log "requirements or Python changed: recreating $venv"
    rm -rf "$venv"
  fi
  log "creating $venv with $("$py" --version 2>&1)"
  "$py" -m venv "$venv" || die "python3 -m venv failed; is Debian's python3-venv installed?"
  start=$(date +%s)
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2 \
    || die "pip install -r $req failed"
  log "installed in $(( $(date +%s) - start )) s"
  printf '%s\n' "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi

echo "$(cd "$venv" && pwd)/bin/python"
