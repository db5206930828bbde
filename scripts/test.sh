#!/usr/bin/env bash
# Runs pobsync's whole test suite on a fresh Debian machine (Python 3.11+):
#   1. installs the system packages the tests use (as root; otherwise names them),
#   2. starts the MariaDB server if it is installed but not running,
#   3. creates .venv and installs pobsync with its dev and mariadb extras,
#   4. lint (ruff check + format check), `manage.py check`, migrations up to date,
#   5. pytest on the SQLite default, then again on MariaDB (a fresh database per run),
#      each printing its 25 slowest tests; any test hanging past its timeout fails
#      (pyproject.toml: 300 s unless the test sets more).
# Extra arguments go to both pytest runs, e.g. `scripts/test.sh -m "not slow"`.
# POBSYNC_TEST_DATABASES="sqlite" skips the MariaDB pass (local use only).
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  python3-venv rsync openssh-server openssh-client pkg-config libmariadb-dev gcc
  chromium docker.io docker-compose debootstrap xxhash
)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing system packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "== not root: install these Debian packages first: ${missing[*]}" >&2
  fi
fi

mariadb_up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }
if ! mariadb_up && [ -x /usr/sbin/mariadbd ] && [ "$(id -u)" = 0 ]; then
  echo "== starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 30); do mariadb_up && break; sleep 1; done
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
echo "== installing pobsync into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,mariadb]"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== django checks"
.venv/bin/python manage.py check
.venv/bin/python manage.py makemigrations --check --dry-run

status=0
databases="${POBSYNC_TEST_DATABASES:-sqlite mariadb}"
for db in $databases; do
  case "$db" in
    sqlite)
      echo "== pytest on SQLite"
      env -u DATABASE_URL .venv/bin/pytest --durations=25 "$@" || status=$?
      ;;
    mariadb)
      name="pobsync_ci_$(date +%s)_$$"
      echo "== pytest on MariaDB (database test_${name}, dropped afterwards)"
      # The browser and compose tests do not depend on the database engine; they run once.
      DATABASE_URL="mysql://root@127.0.0.1:3306/${name}" \
        .venv/bin/pytest --durations=25 -m "not browser and not docker" "$@" || status=$?
      ;;
    *) echo "unknown database '$db' in POBSYNC_TEST_DATABASES" >&2; exit 2 ;;
  esac
done
exit "$status"
