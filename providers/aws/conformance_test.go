package aws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/aws/ec2api"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/providertest"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// TestMain lets this test binary be the agent the provider installs: on
// an instance it runs as ~/.dstack/bin/dstack-agent.
func TestMain(m *testing.M) {
	// As dstack-provider-aws, it serves EC2 as cmd/dstack-provider-aws does.
	if filepath.Base(os.Args[0]) == aws.Program {
		err := aws.Serve(os.Stdin, os.Stdout, func(ctx context.Context, s aws.Settings) (aws.Cloud, error) {
			return ec2api.New(ctx, s)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if filepath.Base(os.Args[0]) == "dstack-agent" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "agent" {
			args = args[1:]
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := agentd.Run(ctx, args, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "dstack-agent:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// env is the fake EC2 API with real SSH hosts as its machines, and the
// provider on the SDK pointed at it.
type env struct {
	hosts   *sshtest.Cluster
	fake    *awstest.Fake
	p       *aws.Provider
	cloud   aws.Cloud
	keyPath string
	url     string
}

func newEnv(t *testing.T, machines int) *env {
	return newEnvWith(t, machines, func(s aws.Settings) aws.Cloud {
		cloud, err := ec2api.New(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		return cloud
	})
}

// newEnvWith is newEnv with the Cloud open makes.
func newEnvWith(t *testing.T, machines int, open func(aws.Settings) aws.Cloud) *env {
	t.Helper()
	return newEnvOpts(t, machines, awstest.Options{}, open)
}

// newEnvOpts is newEnvWith with the fake's options.
func newEnvOpts(t *testing.T, machines int, opts awstest.Options, open func(aws.Settings) aws.Cloud) *env {
	t.Helper()
	var c *sshtest.Cluster
	if machines > 0 {
		c = sshtest.Start(t, sshtest.Options{Hosts: machines, Public: allPublic(machines)})
		opts.Machines = awstest.SSHMachines(c)
	}
	f := awstest.New(opts)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { f.Close() }) // machines off, loop devices freed, even after a failure
	fakeCredentials(t, srv.URL)
	cloud := open(aws.Settings{Regions: []string{"us-east-1", "us-west-2"}})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "") // the provider's key alone logs in
	key := filepath.Join(t.TempDir(), "id_ed25519")
	p, err := aws.New(aws.Options{Cloud: cloud, KeyPath: key, AgentBinary: exe,
		PollInterval: 50 * time.Millisecond, BootTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &env{hosts: c, fake: f, p: p, cloud: cloud, keyPath: key, url: srv.URL}
}

// fakeCredentials points the SDK at the fake with static credentials
// and nothing else of this machine's AWS configuration.
func fakeCredentials(t *testing.T, url string) {
	t.Setenv("AWS_ENDPOINT_URL_EC2", url)
	t.Setenv("AWS_ENDPOINT_URL_PRICING", url)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func allPublic(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

var gpuOffer = offers.Offer{Backend: aws.Backend, Region: "us-east-1", InstanceType: "g5.xlarge", CPUs: 4, Arch: "x86",
	GPU: &offers.GPU{Vendor: "nvidia", Name: "A10G", MemoryMB: 24 << 10, Count: 1}, PricePerHour: 1.006}

func instanceReq(addr string) providers.CreateRequest {
	o := gpuOffer
	return providers.CreateRequest{Kind: providers.KindInstance, Address: addr, Offer: &o,
		Spec: []byte(`{"type":"fleet","name":"f","backends":["aws"]}`)}
}

// TestConformance runs the provider suite against the fake EC2 API: an
// instance is launched, boots as a real SSH host, gets the agent over
// SSH, and runs a job.
func TestConformance(t *testing.T) {
	conformance(t, newEnv(t, 2))
}

// TestConformanceThroughProcess runs the suite with EC2 served by
// dstack-provider-aws (this test binary under that name) over its
// standard input and output, as dstack runs it.
func TestConformanceThroughProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(t.TempDir(), aws.Program)
	if err := os.Symlink(exe, prog); err != nil {
		t.Fatal(err)
	}
	conformance(t, newEnvWith(t, 2, func(s aws.Settings) aws.Cloud {
		c, err := aws.StartProcess(context.Background(), exec.Command(prog), s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}))
}

func conformance(t *testing.T, e *env) {
	p := e.p
	failLaunch := func(code string) func(context.Context) error {
		return func(ctx context.Context) error {
			e.fake.Inject("RunInstances", code, 1)
			req := instanceReq("fleet.f[0]")
			req.Token = providertest.Token()
			_, err := p.Create(ctx, req)
			return err
		}
	}
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Kinds:    []providers.ObjectKind{providers.KindInstance, providers.KindJob},
		Request: func(kind providers.ObjectKind, made map[providers.ObjectKind]providers.Object) providers.CreateRequest {
			if kind == providers.KindInstance {
				return instanceReq("fleet.f[0]")
			}
			return providers.CreateRequest{Address: "task.t[0]", Host: made[providers.KindInstance].ID,
				Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["exec sleep 6546"]}`)}
		},
		Errors: map[providers.Code]func(context.Context) error{
			providers.NoCapacity:  failLaunch("InsufficientInstanceCapacity"),
			providers.Quota:       failLaunch("VcpuLimitExceeded"),
			providers.RateLimited: failLaunch("RequestLimitExceeded"),
			providers.Auth:        failLaunch("AuthFailure"),
			providers.Unsupported: failLaunch("Unsupported"),
			providers.NotFound: func(ctx context.Context) error {
				_, err := p.Create(ctx, providers.CreateRequest{Kind: providers.KindJob, Token: providertest.Token(), Address: "task.t[0]",
					Host: "i-0123456789abcdef0", Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["true"]}`)})
				return err
			},
		},
		Timeout: 2 * time.Minute,
	})
	if n := len(e.fake.Running()); n != 0 {
		t.Errorf("%d instances still run: %+v", n, e.fake.Running())
	}
}
