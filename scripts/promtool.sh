#!/usr/bin/env bash
# Installs promtool, which the metrics tests use to check the agent's
# Prometheus output (`promtool check metrics`) and the example alert rules
# of docs/AGENT.md (`promtool check rules`). It comes in Debian's
# prometheus package; that package's daemon is not started here (the
# tests need the tool only). Idempotent: exits at once when promtool is
# already on PATH. As a user other than root it only says what is missing.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool.sh: promtool is missing; the metrics tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}
promtool --version >/dev/null
