#!/usr/bin/env bash
# Installs Azurite's blob service (the npm package `azurite`), the real
# server the state/azurerm backend's tests run against. Idempotent: it does
# nothing when azurite-blob is already on PATH.
set -euo pipefail

if command -v azurite-blob >/dev/null 2>&1; then
	echo "install-azurite: azurite-blob is already installed at $(command -v azurite-blob) ($(azurite-blob --version 2>/dev/null || echo 'version unknown'))"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "install-azurite: npm is missing; installing Debian's nodejs and npm"
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-azurite: need root to apt-get install nodejs npm" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

echo "install-azurite: npm install -g azurite"
npm install -g --no-audit --no-fund azurite

if ! command -v azurite-blob >/dev/null 2>&1; then
	echo "install-azurite: azurite installed but azurite-blob is not on PATH (npm prefix: $(npm prefix -g)/bin)" >&2
	exit 1
fi
echo "install-azurite: installed azurite-blob $(azurite-blob --version 2>/dev/null || true) at $(command -v azurite-blob)"
