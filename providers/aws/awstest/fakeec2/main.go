// Command fakeec2 runs the fake EC2 API of package awstest on its own,
// for trying dstack's aws backend without an AWS account:
//
//	go run ./providers/aws/awstest/fakeec2 -addr 127.0.0.1:4566 -machines 2
//	export AWS_ENDPOINT_URL_EC2=http://127.0.0.1:4566 AWS_ENDPOINT_URL_PRICING=http://127.0.0.1:4566
//	AWS_ACCESS_KEY_ID=fake AWS_SECRET_ACCESS_KEY=fake dstack apply
//
// With -machines N (root, sshd and network namespaces needed, see
// .ci/install-sshd.sh) each instance is a real SSH host on this machine
// that accepts the key of its user-data; without, instances have no
// machine behind them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4566", "address to listen on")
	machines := flag.Int("machines", 0, "boot instances on this many real SSH hosts (needs root); 0: no machines")
	bootDelay := flag.Duration("boot-delay", 0, "how long new instances stay pending")
	flag.Parse()
	if err := run(*addr, *machines, *bootDelay); err != nil {
		fmt.Fprintln(os.Stderr, "fakeec2:", err)
		os.Exit(1)
	}
}

func run(addr string, machines int, bootDelay time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Listen first: a taken address fails before any machine starts.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	opts := awstest.Options{BootDelay: bootDelay}
	if machines > 0 {
		c, err := sshtest.Open(sshtest.Options{Hosts: machines, Public: public(machines)}, log.Printf)
		if c != nil {
			defer func() {
				if err := c.Close(); err != nil {
					log.Print(err)
				}
			}()
		}
		if err != nil {
			return err
		}
		opts.Machines = awstest.SSHMachines(c)
		// Volumes keep their data in sparse files, attached to the
		// machines as loop devices.
		if opts.DiskDir, err = os.MkdirTemp("", "fakeec2-volumes-"); err != nil {
			return err
		}
		defer os.RemoveAll(opts.DiskDir)
	}
	f := awstest.New(opts)
	defer f.Close()
	srv := &http.Server{Handler: logged(f), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Printf("fake EC2 listening on http://%s (set AWS_ENDPOINT_URL_EC2=http://%[1]s AWS_ENDPOINT_URL_PRICING=http://%[1]s)\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

func public(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

// logged logs each action answered.
func logged(f *awstest.Fake) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(f.Calls())
		f.ServeHTTP(w, r)
		for _, c := range f.Calls()[n:] {
			if c.Error != "" {
				log.Printf("%s %s: %s", c.Region, c.Action, c.Error)
			} else {
				log.Printf("%s %s", c.Region, c.Action)
			}
		}
	})
}
