#!/usr/bin/env bash
# Installs the SMTP server that the notification tests send mail through:
# Debian's python3-aiosmtpd, run by Debian's own Python (/usr/bin/python3).
# The tests (internal/testutil/smtp.go) start it themselves on a free port
# of 127.0.0.1, with a small handler that writes each message it receives
# to a folder and, when asked, offers STARTTLS or implicit TLS and
# requires AUTH. Idempotent: exits at once when the module already loads.
# As a user other than root it only says what is missing.
set -euo pipefail
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import aiosmtpd' 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "smtp.sh: python3-aiosmtpd is missing; the email tests will be skipped (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq python3-aiosmtpd >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq python3-aiosmtpd >/dev/null
}
"$py" -c 'import aiosmtpd'
