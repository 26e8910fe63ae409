#!/usr/bin/env bash
# Installs the PostgreSQL server that the PostgreSQL tests run against
# (Debian's postgresql-15, binaries in /usr/lib/postgresql/15/bin) and
# pgBackRest (the peer of the PostgreSQL benchmark), when they are missing.
# The tests (internal/testutil/postgres.go) make their own clusters with
# initdb; the package's default cluster is not created. Runs as root on CI;
# as another user it only reports what is missing.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pg_waldump ] || need+=(postgresql-15)
command -v pgbackrest >/dev/null || need+=(pgbackrest)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "postgres.sh: missing packages ${need[*]}; the PostgreSQL tests will be skipped (run as root to install)" >&2
  exit 0
fi
# No "main" cluster: nothing listens on 5432 behind the tests' backs.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/rewind-test.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
/usr/lib/postgresql/15/bin/initdb --version >/dev/null
