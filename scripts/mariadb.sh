#!/usr/bin/env bash
# Installs the MariaDB server the MariaDB tests run against (Debian's
# mariadb-server 10.11), mariadb-backup (mariabackup, mbstream) and the
# client tools (mariadb, mariadb-dump, mariadb-binlog, mariadb-check), when
# they are missing. The tests (internal/testutil/mariadb.go) make their own
# data directories with mariadb-install-db and start mariadbd on a private
# socket; the package's own server is never started. Runs as root on CI; as
# another user it only reports what is missing.
set -euo pipefail
need=()
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb-install-db >/dev/null || need+=(mariadb-server)
command -v mariabackup >/dev/null || need+=(mariadb-backup)
command -v mbstream >/dev/null || need+=(mariadb-backup)
command -v mariadb >/dev/null || need+=(mariadb-client)
command -v mariadb-binlog >/dev/null || need+=(mariadb-client)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "mariadb.sh: missing packages ${need[*]}; the MariaDB tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The package's post-install would start its own server on the default
# socket; a policy-rc.d that refuses keeps it down (only while installing,
# and only when the machine has none of its own).
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  own_policy=1
fi
trap '[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
mariadbd --version >/dev/null 2>&1 || /usr/sbin/mariadbd --version >/dev/null
