#!/usr/bin/env bash
# Installs pebble, Let's Encrypt's small ACME server, for the gateway's
# HTTPS test: a gateway with a domain gets its certificate from it. Built
# from its Go module with go install; skips the build when the right
# version is there (go version -m reads the module version it was built
# from; pebble -version says "dev" for a go install build).
set -euo pipefail

version=v2.10.3
gobin="$(go env GOPATH)/bin"
installed() { go version -m "$gobin/pebble" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/letsencrypt/pebble/v2[[:space:]]+$version([[:space:]]|$)"; }
if installed; then
	echo "install-pebble: pebble $version already in $gobin"
	exit 0
fi
echo "install-pebble: building github.com/letsencrypt/pebble/v2/cmd/pebble@$version"
GOBIN="$gobin" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$version"
installed || { echo "install-pebble: $gobin/pebble was not built from $version" >&2; exit 1; }
echo "install-pebble: installed pebble $version in $gobin"
