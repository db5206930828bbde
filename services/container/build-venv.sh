#!/bin/sh
# Build stage of every pobsync image, in two steps so that a code change does not
# re-download and re-compile the dependencies (each step is its own image layer):
#
#   pobsync-build-venv deps   build tools, /opt/venv, and the dependencies named in
#                             /src/pyproject.toml (with the mariadb extra)
#   pobsync-build-venv app    a wheel of pobsync itself in /wheels (the runtime stage
#                             installs it into its copy of /opt/venv)
#
# mysqlclient has no Linux wheel on PyPI, so it is compiled here; the compilers and
# headers stay in the build stage and never reach the runtime image. Works on the
# official python:3.x-slim images (Python headers under /usr/local) and on a plain
# Debian base (Debian's python3-dev). pip reads its index settings from PIP_* build
# arguments when they are given (docs/docker.md).
set -eu
pip="/opt/venv/bin/pip"

case "${1:-}" in
  deps)
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      && headers="" || headers="python3-dev"
    # shellcheck disable=SC2086  # word splitting of $headers is intended
    /usr/local/sbin/pobsync-apt-install gcc libc6-dev pkg-config libmariadb-dev $headers
    python3 -m venv /opt/venv
    python3 -c 'import tomllib
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["mariadb"]))' \
      > /tmp/requirements.txt
    "$pip" install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt
    rm /tmp/requirements.txt
    ;;
  app)
    "$pip" wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels /src
    ;;
  *)
    echo "usage: pobsync-build-venv deps|app" >&2
    exit 2
    ;;
esac
