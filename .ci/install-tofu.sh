#!/usr/bin/env bash
# Installs OpenTofu for the Terraform provider's acceptance tests, which run
# every case under both terraform and tofu. OpenTofu's go.mod has a replace
# directive, so `go install module@version` refuses it; instead this
# downloads the released module through the module proxy and builds its
# cmd/tofu from the module cache, where its go.mod (replace included) is
# the main module's. Skips the build when the right version is there.
set -euo pipefail

version=v1.12.6
gobin="$(go env GOPATH)/bin"
installed() { "$gobin/tofu" version 2>/dev/null | grep -qx "OpenTofu $version"; }
if installed; then
	echo "install-tofu: OpenTofu $version already in $gobin"
	exit 0
fi
echo "install-tofu: building OpenTofu $version from github.com/opentofu/opentofu@$version"
dir="$(go mod download -json "github.com/opentofu/opentofu@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
	echo "install-tofu: go mod download gave no module directory" >&2
	exit 1
fi
mkdir -p "$gobin"
# The module cache is read-only; building there writes only to GOCACHE
# and the output path. -mod=readonly keeps go from editing its go.mod.
# version.dev=no is what OpenTofu's release builds set: without it the
# binary calls itself $version-dev.
(cd "$dir" && go build -mod=readonly -trimpath \
	-ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$gobin/tofu.tmp" ./cmd/tofu)
mv "$gobin/tofu.tmp" "$gobin/tofu"
if ! installed; then
	echo "install-tofu: the build does not report OpenTofu $version:" >&2
	"$gobin/tofu" version >&2
	exit 1
fi
echo "install-tofu: installed OpenTofu $version in $gobin"
