#!/usr/bin/env bash
# Installs versitygw, the S3-compatible gateway the state/s3 backend's tests
# run against (its posix backend stores objects in a temporary directory).
# Idempotent: it does nothing when versitygw is already in $(go env GOPATH)/bin.
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
bin="$(go env GOPATH)/bin/versitygw"

if [ -x "$bin" ]; then
	echo "install-versitygw: versitygw is already installed at $bin"
	exit 0
fi

echo "install-versitygw: go install github.com/versity/versitygw/cmd/versitygw@$VERSION (this builds from source and can take a few minutes)"
# Outside the repository, so the project's go.mod is neither read nor changed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"

if [ ! -x "$bin" ]; then
	echo "install-versitygw: go install finished but $bin is missing" >&2
	exit 1
fi
echo "install-versitygw: installed versitygw $VERSION at $bin"
