package cli

import (
	"fmt"
	"os"
	"strconv"

	"github.com/dstackai/dstack-go/agent/imds/imdstest"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdIMDS drives amazon-ec2-metadata-mock, AWS's simulator of the EC2
// instance metadata service, for the agents the script starts:
//
//	imds port            picks a port for the next mock and points agents
//	                     started from now on at it (DSTACK_AGENT_WATCH_INTERRUPTIONS,
//	                     DSTACK_AGENT_IMDS_ENDPOINT, a 100ms DSTACK_AGENT_IMDS_INTERVAL)
//	imds start ARGS...   starts the mock on that port: `imds start spot 0`
//	                     gives a spot interruption notice at once
//	imds stop            stops it
//
// A script that uses it starts with `[!ec2-metadata-mock] skip`.
func cmdIMDS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: imds port | start ARGS... | stop")
	}
	switch args[0] {
	case "port":
		port, err := imdstest.FreePort()
		ts.Check(err)
		ts.Setenv("IMDS_PORT", strconv.Itoa(port))
		ts.Setenv("DSTACK_AGENT_WATCH_INTERRUPTIONS", "1")
		ts.Setenv("DSTACK_AGENT_IMDS_ENDPOINT", "http://127.0.0.1:"+strconv.Itoa(port))
		ts.Setenv("DSTACK_AGENT_IMDS_INTERVAL", "100ms")
	case "start":
		port, err := strconv.Atoi(ts.Getenv("IMDS_PORT"))
		if err != nil {
			ts.Fatalf("imds start: no port (run imds port first)")
		}
		dir := ts.MkAbs("imds-" + strconv.Itoa(port))
		ts.Check(os.MkdirAll(dir, 0o700))
		m, err := imdstest.Launch(dir, port, args[1:]...)
		ts.Check(err)
		mocks := ts.Value(imdsKey{}).(*[]*imdstest.Mock)
		*mocks = append(*mocks, m)
		ts.Defer(m.Stop)
	case "stop":
		mocks := ts.Value(imdsKey{}).(*[]*imdstest.Mock)
		for _, m := range *mocks {
			m.Stop()
		}
		*mocks = nil
	default:
		ts.Fatalf("usage: imds port | start ARGS... | stop")
	}
}

// hasIMDSMock is the script condition ec2-metadata-mock: whether the mock
// is installed. Without it a script skips, unless
// DSTACK_REQUIRE_EC2_METADATA_MOCK is set: then the condition fails it.
func hasIMDSMock() (bool, error) {
	if imdstest.Binary() != "" {
		return true, nil
	}
	if os.Getenv(imdstest.RequireEnv) != "" {
		return false, fmt.Errorf("ec2-metadata-mock is not installed (.ci/install-ec2-metadata-mock.sh) and %s is set", imdstest.RequireEnv)
	}
	return false, nil
}

// imdsKey keys a script's started mocks (a *[]*imdstest.Mock) in its
// testscript.Env.Values.
type imdsKey struct{}
