#!/usr/bin/env bash
# Makes sure a Docker Engine answers on its socket for the agent's docker
# runtime tests: installs Debian's docker.io if dockerd is missing, starts
# dockerd in the background (logging to /tmp/dockerd.log) unless the socket
# already answers, and waits (at most ~30 s) until `docker version` works.
# Also installs busybox-static, whose /bin/busybox the tests import as their
# image (no registry is reachable). Idempotent.
set -euo pipefail

apt_updated=
apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-docker: need root to apt-get install $*" >&2
		exit 1
	fi
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
	echo "install-docker: dockerd found at $(command -v dockerd)"
else
	echo "install-docker: apt-get install docker.io"
	apt_install docker.io
fi

if [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1; then
	echo "install-docker: busybox found at /bin/busybox"
else
	echo "install-docker: apt-get install busybox-static"
	apt_install busybox-static
fi

if docker version >/dev/null 2>&1; then
	echo "install-docker: the Engine already answers"
else
	echo "install-docker: starting dockerd (log: /tmp/dockerd.log)"
	# setsid: the daemon must not die with this script's process group.
	setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		if docker version >/dev/null 2>&1; then
			break
		fi
		sleep 0.5
	done
	if ! docker version >/dev/null 2>&1; then
		echo "install-docker: dockerd did not answer within 30 s; its log:" >&2
		tail -n 50 /tmp/dockerd.log >&2 || true
		exit 1
	fi
fi
echo "install-docker: $(docker version --format 'client {{.Client.Version}}, engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
