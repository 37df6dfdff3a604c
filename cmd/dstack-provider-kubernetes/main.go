// Command dstack-provider-kubernetes serves the kubernetes backend's
// cluster calls to dstack over its standard input and output (see
// package providers/kubernetes), so that client-go is linked into this
// program only. dstack starts it when a command needs the cluster.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dstackai/dstack-go/providers/kubernetes"
	"github.com/dstackai/dstack-go/providers/kubernetes/kubeapi"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "dstack-provider-kubernetes is started by dstack and speaks to it over its standard input and output; it takes no arguments")
		os.Exit(2)
	}
	err := kubernetes.Serve(os.Stdin, os.Stdout, func(ctx context.Context, s kubernetes.Settings) (kubernetes.Cluster, error) {
		return kubeapi.Open(s)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dstack-provider-kubernetes:", err)
		os.Exit(1)
	}
}
