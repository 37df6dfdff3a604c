// Package imdstest runs amazon-ec2-metadata-mock (AEMM), AWS's own
// simulator of the EC2 instance metadata service, for tests: the agent's
// spot interruption watch is tested against it rather than against a
// hand-written server. .ci/install-ec2-metadata-mock.sh builds it into
// $(go env GOPATH)/bin.
package imdstest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv, when set, makes a missing ec2-metadata-mock fail the tests
// that need it instead of skipping them (CI sets it).
const RequireEnv = "DSTACK_REQUIRE_EC2_METADATA_MOCK"

// Binary returns the path of ec2-metadata-mock (on PATH, else in
// $GOPATH/bin), or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("ec2-metadata-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "ec2-metadata-mock")
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p
	}
	return ""
}

// Spot starts the mock's spot interruption scenario, IMDSv2 only: the
// notice path answers 404 for delay after the mock started, then a
// notice with action "terminate" and a time two minutes after the
// request. It returns the endpoint (http://127.0.0.1:PORT) once the mock
// answers; the mock is killed when the test ends. Without the binary
// the test is skipped (failed with RequireEnv set).
func Spot(tb testing.TB, delay time.Duration) string {
	tb.Helper()
	return Start(tb, "spot", "--imdsv2", "--mock-delay-sec", strconv.Itoa(int(delay/time.Second)))
}

// Start runs ec2-metadata-mock with args (a subcommand and its flags;
// Start adds --hostname and --port) and returns its endpoint once it
// answers a token request.
func Start(tb testing.TB, args ...string) string {
	tb.Helper()
	if Binary() == "" {
		if os.Getenv(RequireEnv) != "" {
			tb.Fatalf("ec2-metadata-mock is not installed (run .ci/install-ec2-metadata-mock.sh) and %s is set", RequireEnv)
		}
		tb.Skip("ec2-metadata-mock is not installed; run .ci/install-ec2-metadata-mock.sh")
	}
	m, err := Launch(tb.TempDir(), 0, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Stop)
	return m.Endpoint
}

// Mock is a running ec2-metadata-mock.
type Mock struct {
	// Endpoint is its base URL, http://127.0.0.1:PORT.
	Endpoint string
	stop     func()
}

// Stop kills the mock and waits for it to exit.
func (m *Mock) Stop() { m.stop() }

// Launch runs ec2-metadata-mock with args, as Start does, on port (0:
// a free one), with dir as its home (where it looks for a config file,
// and where its output goes, to aemm.log). The caller stops it.
func Launch(dir string, port int, args ...string) (*Mock, error) {
	return LaunchOn(dir, "127.0.0.1", port, args...)
}

// LaunchOn is Launch on address host (one that machines other than this
// one reach, for their agents).
func LaunchOn(dir, host string, port int, args ...string) (*Mock, error) {
	bin := Binary()
	if bin == "" {
		return nil, fmt.Errorf("ec2-metadata-mock is not installed; run .ci/install-ec2-metadata-mock.sh")
	}
	if port != 0 {
		return launch(dir, bin, host, port, args)
	}
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		m, err := launch(dir, bin, host, port, args)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("ec2-metadata-mock: %w", lastErr)
}

func launch(dir, bin, host string, port int, args []string) (*Mock, error) {
	log, err := os.Create(filepath.Join(dir, "aemm.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin, append(append([]string(nil), args...), "--hostname", host, "--port", strconv.Itoa(port))...)
	cmd.Env = append(os.Environ(), "HOME="+dir) // no $HOME/aemm-config.json
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	endpoint := "http://" + net.JoinHostPort(host, strconv.Itoa(port))
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			out, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("exited at start:\n%s", out)
		default:
		}
		req, _ := http.NewRequest(http.MethodPut, endpoint+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &Mock{Endpoint: endpoint, stop: sync.OnceFunc(stop)}, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	out, _ := os.ReadFile(log.Name())
	return nil, fmt.Errorf("did not answer within 10s:\n%s", out)
}

// FreePort returns a loopback TCP port nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
