#!/usr/bin/env bash
# Installs the parts of the cluster the Kubernetes backend's tests run
# against, into GOPATH/bin, building each from its Go module:
#   etcd            go.etcd.io/etcd/server/v3 (through .ci/k8s/etcd)
#   kube-apiserver  k8s.io/kubernetes/cmd/kube-apiserver (through .ci/k8s)
#   kwok            sigs.k8s.io/kwok/cmd/kwok (go install: simulated nodes)
# k8s.io/kubernetes cannot be go-installed (its go.mod replaces its staging
# modules with paths its zip lacks), so the wrapper module .ci/k8s pins
# every k8s.io module at the release's staging version. Each binary is
# built only when GOPATH/bin lacks the version this script names, so a
# second run on one machine costs nothing. DSTACK_K8S_KUBELET=1 also
# builds the kubelet from the same module.
set -euo pipefail
cd "$(dirname "$0")/k8s"

etcd_version=v3.7.3
kube_version=v1.37.2
kwok_version=v0.8.0
gobin="$(go env GOPATH)/bin"
mkdir -p "$gobin"

# stamp NAME VERSION: whether GOPATH/bin/NAME was built at VERSION (the
# version is kept beside the binary; etcd's and the API server's own
# version output differ in shape).
stamp() { [ -x "$gobin/$1" ] && [ "$(cat "$gobin/$1.version" 2>/dev/null)" = "$2" ]; }
build() { # NAME VERSION PACKAGE [ldflags]
	local name=$1 version=$2 pkg=$3 ldflags=${4:-}
	if stamp "$name" "$version"; then
		echo "install-k8s: $name $version already in $gobin"
		return
	fi
	echo "install-k8s: building $name $version from $pkg"
	local start=$SECONDS
	CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$gobin/$name.tmp" "$pkg"
	mv "$gobin/$name.tmp" "$gobin/$name"
	echo "$version" > "$gobin/$name.version"
	echo "install-k8s: built $name in $((SECONDS - start))s"
}

# The API server reports its version from these (clients check it).
kv="k8s.io/component-base/version"
minor="${kube_version#v1.}"
kldflags="-X $kv.gitVersion=$kube_version -X $kv.gitMajor=1 -X $kv.gitMinor=${minor%%.*}"
build etcd "$etcd_version" ./etcd
build kube-apiserver "$kube_version" k8s.io/kubernetes/cmd/kube-apiserver "$kldflags"
if [ "${DSTACK_K8S_KUBELET:-}" = 1 ]; then
	build kubelet "$kube_version" k8s.io/kubernetes/cmd/kubelet "$kldflags"
fi
if stamp kwok "$kwok_version"; then
	echo "install-k8s: kwok $kwok_version already in $gobin"
else
	echo "install-k8s: building kwok $kwok_version"
	start=$SECONDS
	CGO_ENABLED=0 go install "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
	echo "$kwok_version" > "$gobin/kwok.version"
	echo "install-k8s: built kwok in $((SECONDS - start))s"
fi
# kwok moves nodes and pods through stages it is given: the "fast" ones
# its module ships (nodes become ready at once, bound pods run, deleted
# pods go), gathered into one file beside the binary.
stages="$gobin/kwok-stages.yaml"
if [ ! -s "$stages" ] || [ "$(cat "$stages.version" 2>/dev/null)" != "$kwok_version" ]; then
	dir="$(go mod download -json "sigs.k8s.io/kwok@$kwok_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	: > "$stages.tmp"
	for f in "$dir"/kustomize/stage/node/fast/*.yaml "$dir"/kustomize/stage/pod/fast/*.yaml; do
		case "$f" in */kustomization.yaml) continue ;; esac
		printf -- '---\n' >> "$stages.tmp"
		cat "$f" >> "$stages.tmp"
	done
	mv "$stages.tmp" "$stages"
	echo "$kwok_version" > "$stages.version"
fi
