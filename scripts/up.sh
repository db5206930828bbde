#!/usr/bin/env bash
# Starts pobsync on the embedded SQLite default, in the foreground: creates .venv,
# installs pobsync, applies migrations, then runs the processes in Procfile (web on
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
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"
python3 manage.py migrate --no-input
echo "pobsync: web on http://127.0.0.1:${POBSYNC_WEB_PORT:-8000}/ (create a login with: .venv/bin/pobsync django createsuperuser)"
exec honcho -f Procfile start
