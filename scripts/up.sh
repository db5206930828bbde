#!/usr/bin/env bash
# Starts pobsync on the embedded SQLite default, in the foreground: creates .venv,
# installs pobsync (only when pyproject.toml changed since the last install), applies
# migrations, then runs the processes in Procfile (web on
# http://127.0.0.1:8000/) with their logs interleaved and prefixed. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
command -v rsync >/dev/null || need+=(rsync)
command -v ssh >/dev/null || need+=(openssh-client)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  else
    echo "install these Debian packages first: ${need[*]}" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# The install is editable, so code changes need no reinstall; only pyproject.toml
# (dependencies, entry points) does. Its hash is kept in a stamp file inside .venv,
# written after a successful install: a restart skips pip (10-15 s).
stamp=.venv/.pobsync-pyproject.sha256
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x .venv/bin/pobsync ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "pobsync: installing into .venv (pyproject.toml is new or changed)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  echo "$wanted" >"$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
python3 manage.py migrate --no-input
echo "pobsync: web on http://127.0.0.1:${POBSYNC_WEB_PORT:-8000}/ (create a login with: .venv/bin/pobsync django createsuperuser)"
exec honcho -f Procfile start
