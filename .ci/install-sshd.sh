#!/usr/bin/env bash
# Installs what providers/ssh/sshtest needs to start SSH hosts in network
# namespaces: Debian's openssh-server (/usr/sbin/sshd), iproute2 (ip),
# iptables, util-linux (unshare, nsenter) and busybox-static (ping and
# httpd inside the hosts), each only if missing, and creates sshd's
# privilege separation directory /run/sshd. It starts no sshd (the tests
# start their own) and disables the system one where the package would
# start it. The tests run as root. Idempotent.
set -euo pipefail

apt_updated=
apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-sshd: need root to apt-get install $*" >&2
		exit 1
	fi
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# have CMD PATH: whether CMD is on $PATH or PATH is executable (root's sbin
# directories may be missing from a CI user's $PATH).
have() {
	command -v "$1" >/dev/null 2>&1 || [ -x "$2" ]
}

if have sshd /usr/sbin/sshd; then
	echo "install-sshd: sshd found"
else
	echo "install-sshd: apt-get install openssh-server"
	# Where the system has an init, keep the package from starting (and
	# enabling) the system sshd: policy-rc.d 101 denies service starts.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ] && [ "$(id -u)" -eq 0 ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt_install openssh-server
fi

if have ip /usr/sbin/ip; then
	echo "install-sshd: ip found"
else
	echo "install-sshd: apt-get install iproute2"
	apt_install iproute2
fi

if have iptables /usr/sbin/iptables; then
	echo "install-sshd: iptables found"
else
	echo "install-sshd: apt-get install iptables"
	apt_install iptables
fi

if have unshare /usr/bin/unshare && have nsenter /usr/bin/nsenter; then
	echo "install-sshd: unshare and nsenter found"
else
	echo "install-sshd: apt-get install util-linux"
	apt_install util-linux
fi

if [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1; then
	echo "install-sshd: busybox found at /bin/busybox"
else
	echo "install-sshd: apt-get install busybox-static"
	apt_install busybox-static
fi

if [ "$(id -u)" -eq 0 ]; then
	mkdir -p /run/sshd
	chmod 755 /run/sshd
else
	echo "install-sshd: not root; not creating /run/sshd (the tests need root anyway)" >&2
fi

sshd=$(command -v sshd 2>/dev/null || echo /usr/sbin/sshd)
echo "install-sshd: $("$sshd" -V 2>&1 | head -n 1)"
