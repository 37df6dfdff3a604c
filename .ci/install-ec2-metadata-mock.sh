#!/usr/bin/env bash
# Installs amazon-ec2-metadata-mock (AEMM), AWS's simulator of the EC2
# instance metadata service: the agent's spot interruption watch is tested
# against its `spot` scenario (agent/imds/imdstest starts it).
# Idempotent: it does nothing when the right version is already in
# $(go env GOPATH)/bin.
set -euo pipefail

VERSION="${EC2_METADATA_MOCK_VERSION:-v1.13.0}"
bin="$(go env GOPATH)/bin/ec2-metadata-mock"
stamp="$bin.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSION" ]; then
	echo "install-ec2-metadata-mock: $VERSION is already installed at $bin"
	exit 0
fi

echo "install-ec2-metadata-mock: go install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@$VERSION"
# Outside the repository, so the project's go.mod is neither read nor changed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
GOFLAGS=-buildvcs=false go install "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@$VERSION"

if [ ! -x "$bin" ]; then
	echo "install-ec2-metadata-mock: go install finished but $bin is missing" >&2
	exit 1
fi
echo "$VERSION" >"$stamp"
echo "install-ec2-metadata-mock: installed $VERSION at $bin"
