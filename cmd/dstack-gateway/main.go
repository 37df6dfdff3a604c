// Command dstack-gateway is dstack's gateway, the data plane of services
// (package gateway). The dstack CLI starts it on this machine for the
// local backend; it runs in a program of its own so that the CLI does
// not link its TLS and ACME libraries.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dstackai/dstack-go/gateway/gatewayd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := gatewayd.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dstack-gateway:", err)
		os.Exit(1)
	}
}
