#!/bin/sh
# Runtime stage of every pobsync image: the shared libraries and tools pobsync runs with,
# the unprivileged `pobsync` user (uid/gid 10001) and the directories that compose
# mounts volumes on. Ownership here is what a fresh named volume starts with:
#   /opt/pobsync          POBSYNC_HOME (pobsync:pobsync 0750; generated secret key)
#   /opt/pobsync/ssh      POBSYNC_SSH_DIR: id_ed25519, known_hosts (root 0700)
#   /opt/pobsync/backups  the backup root (root 0700: snapshots hold other machines' files)
#   /var/lib/pobsync      the SQLite database (pobsync:pobsync 0750)
# The runner runs as root (see docs/docker.md); web and scheduler run as pobsync.
set -eu
/usr/local/sbin/pobsync-apt-install libmariadb3 rsync openssh-client ca-certificates
groupadd --gid 10001 pobsync
useradd --uid 10001 --gid pobsync --home-dir /opt/pobsync --no-create-home \
  --shell /usr/sbin/nologin pobsync
install -d -o pobsync -g pobsync -m 0750 /opt/pobsync /var/lib/pobsync
install -d -o root -g root -m 0700 /opt/pobsync/ssh /opt/pobsync/backups
