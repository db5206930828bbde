#!/bin/sh
# Installs the named Debian packages that the base image does not have yet, then drops
# apt's lists. A locally made base that already carries them (the compose test's
# debootstrap image) needs no network for this step.
set -eu
missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0
apt-get update -q
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
rm -rf /var/lib/apt/lists/*
