#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries (initdb, postgres, pg_ctl)
# and the postgres system user exist; the state/pg tests start their own
# throw-away cluster with them. Idempotent.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	echo "install-postgres: server binaries found: $(ls -d /usr/lib/postgresql/*/bin | head -1)"
else
	echo "install-postgres: apt-get install postgresql"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
if ! id postgres >/dev/null 2>&1; then
	echo "install-postgres: adding the postgres system user"
	useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
