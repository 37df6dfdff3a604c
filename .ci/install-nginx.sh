#!/usr/bin/env bash
# Installs Debian's nginx for the gateway benchmark (make bench), which
# proxies the same replica through nginx and through dstack's gateway side
# by side. The bench starts its own nginx with its own configuration; the
# package's service is not used. Skips apt-get when nginx is there.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
	echo "install-nginx: $(/usr/sbin/nginx -v 2>&1)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 ||
	apt-get install -y -qq --no-install-recommends nginx >/dev/null
# Debian's package starts its own nginx on port 80; the bench needs none.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi
[ -f /run/nginx.pid ] && kill "$(cat /run/nginx.pid)" 2>/dev/null || true
echo "install-nginx: $(/usr/sbin/nginx -v 2>&1)"
