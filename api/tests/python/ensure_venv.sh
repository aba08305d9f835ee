#!/usr/bin/env bash
# ensure_venv.sh [VENV_DIR]
#
# Makes sure a Python venv with api/tests/python/requirements.txt exists at
# VENV_DIR (default target/pyenv; a relative path is taken from the repo
# root) and prints the venv's python (absolute path) as the LAST stdout line.
#
# Idempotent: VENV_DIR/.requirements.sha256 holds the sha256 of the
# requirements.txt last installed; when it matches and the venv's python
# runs, nothing is installed. When it differs, the venv is rebuilt from
# scratch (no stale packages). Concurrent callers are serialised with flock.
#
# Needs only python3 (or $PYTHON) with pip. Uses `python3 -m venv`; where the
# venv/ensurepip module is missing (Debian without python3-venv) it falls
# back to virtualenv, pip-installed into a throwaway directory (so the
# system site-packages and PEP 668 markers are left alone).
# All pip/venv chatter goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
req="$here/requirements.txt"
venv="${1:-target/pyenv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
python="${PYTHON:-python3}"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off PIP_ROOT_USER_ACTION=ignore

log() { echo "ensure_venv: $*" >&2; }

command -v "$python" >/dev/null 2>&1 || { log "no $python on PATH"; exit 1; }
want="$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$req")"
marker="$venv/.requirements.sha256"
vpy="$venv/bin/python"

mkdir -p "$(dirname "$venv")"
# Serialise concurrent callers (e.g. parallel tests) on a lock beside the venv.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
fi

up_to_date() {
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && "$vpy" -c 'import sys' >/dev/null 2>&1
}

create_venv() {
  rm -rf "$venv"
  if "$python" -m venv "$venv" >&2 && "$vpy" -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  log "'$python -m venv' failed (no venv/ensurepip module?); falling back to virtualenv"
  rm -rf "$venv"
  local tool rc=0
  tool="$(mktemp -d)"
  { "$python" -m pip install --quiet --target "$tool" virtualenv >&2 &&
    PYTHONPATH="$tool" "$python" -m virtualenv --quiet "$venv" >&2; } || rc=$?
  rm -rf "$tool"
  return "$rc"
}

if ! up_to_date; then
  started=$SECONDS
  log "creating $venv and installing $(basename "$req") ..."
  create_venv
  "$vpy" -m pip install --quiet -r "$req" >&2
  echo "$want" >"$marker"
  log "done in $((SECONDS - started))s"
fi

echo "$vpy"
