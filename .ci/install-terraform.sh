#!/usr/bin/env bash
# Installs terraform 1.5.7 (the last release under the MPL) with go install,
# for the Terraform provider's acceptance tests and the benchmarks that
# compare dstack with terraform. Skips the build when it is there already.
set -euo pipefail

gobin="$(go env GOPATH)/bin"
if "$gobin/terraform" version 2>/dev/null | head -1 | grep -q 'v1\.5\.7$'; then
	exit 0
fi
go install github.com/hashicorp/terraform@v1.5.7
"$gobin/terraform" version | head -1
