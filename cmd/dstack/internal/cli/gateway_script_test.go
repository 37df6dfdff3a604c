package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/net/websocket"

	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
	"github.com/dstackai/dstack-go/gateway/gatewayd"
	"github.com/dstackai/dstack-go/gateway/gatewaytest"
)

// gatewayMain is dstack-gateway, for the scripts.
func gatewayMain() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := gatewayd.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dstack-gateway:", err)
		os.Exit(1)
	}
}

// TestGatewayScripts runs testdata/gateway/*.txtar: services on the local
// backend with Docker, reached through the gateway that apply starts,
// with the replica image (a static Go HTTP server) imported for the test.
func TestGatewayScripts(t *testing.T) {
	dockertest.Image(t)
	gatewaytest.ReplicaImage(t)
	// A real ACME server for the scripts' gateways with a domain
	// (condition [pebble]; without pebble those scripts are skipped,
	// unless DSTACK_REQUIRE_PEBBLE makes that a failure).
	var pebble *gatewaytest.Pebble
	if gatewaytest.HavePebble() || os.Getenv(gatewaytest.RequirePebble) != "" {
		pebble = gatewaytest.StartPebble(t, t.TempDir())
	}
	for _, run := range []string{"llm", "web"} {
		dockertest.RemoveContainers(t, "ai.dstack.run-name="+run)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/gateway",
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			env.Defer(func() {
				killAgentAndJobs(filepath.Join(env.WorkDir, "agent"))
				killPIDFile(filepath.Join(env.WorkDir, "gateway", "gateway.pid"))
			})
			if pebble == nil {
				return nil
			}
			env.Setenv("DSTACK_ACME_CA", pebble.DirectoryURL)
			env.Setenv("DSTACK_ACME_CA_ROOT", pebble.TLSCertFile)
			root := filepath.Join(env.WorkDir, "acme-root.pem")
			env.Setenv("ACME_ROOT", root)
			return os.WriteFile(root, pebble.RootPEM, 0o600)
		},
		Condition: func(cond string) (bool, error) {
			if cond == "pebble" {
				return pebble != nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"gwhttp":  cmdGWHTTP,
			"gwsse":   cmdGWSSE,
			"gwws":    cmdGWWS,
			"gwlimit": cmdGWLimit,
			"gwtls":   cmdGWTLS,
		},
	})
}

// gatewayEnv gives a script's services a gateway of its own, in its
// work directory on a free port, stopped when the script ends.
func gatewayEnv(env *testscript.Env) {
	env.Setenv("DSTACK_GATEWAY_DIR", filepath.Join(env.WorkDir, "gateway"))
	env.Setenv("DSTACK_GATEWAY_LISTEN", "127.0.0.1:0")
	env.Defer(func() { killPIDFile(filepath.Join(env.WorkDir, "gateway", "gateway.pid")) })
}

func killPIDFile(path string) {
	if data, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func tokenHeader(ts *testscript.TestScript, file string) string {
	if file == "" || file == "-" {
		return ""
	}
	return "Bearer " + strings.TrimSpace(ts.ReadFile(file))
}

// cmdGWHTTP sends a request and checks the answer, n times in a row:
// gwhttp [-token FILE] [-body JSON] [-n N] METHOD URL CODE [SUBSTRING].
// Negated, the request must fail or get another answer.
func cmdGWHTTP(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("gwhttp", flag.ContinueOnError)
	tokFile := fs.String("token", "", "file with the token")
	body := fs.String("body", "", "request body")
	n := fs.Int("n", 1, "times")
	ts.Check(fs.Parse(args))
	a := fs.Args()
	if len(a) < 3 {
		ts.Fatalf("usage: gwhttp [-token FILE] [-body JSON] [-n N] METHOD URL CODE [SUBSTRING]")
	}
	want, err := strconv.Atoi(a[2])
	ts.Check(err)
	for i := range *n {
		var rd io.Reader
		if *body != "" {
			rd = strings.NewReader(*body)
		}
		req, err := http.NewRequest(a[0], a[1], rd)
		ts.Check(err)
		if h := tokenHeader(ts, *tokFile); h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if neg {
			// ! gwhttp: the request fails or gets another answer within
			// 5 s (a gateway being stopped may answer a moment longer).
			for try := 0; ; try++ {
				if err != nil {
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want || (len(a) > 3 && !strings.Contains(string(b), a[3])) {
					return
				}
				if try == 50 {
					ts.Fatalf("%s %s: still %d %q, want anything else", a[0], a[1], resp.StatusCode, b)
				}
				time.Sleep(100 * time.Millisecond)
				req, _ = http.NewRequest(a[0], a[1], nil)
				if h := tokenHeader(ts, *tokFile); h != "" {
					req.Header.Set("Authorization", h)
				}
				resp, err = http.DefaultClient.Do(req)
			}
		}
		ts.Check(err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (len(a) > 3 && !strings.Contains(string(b), a[3])) {
			ts.Fatalf("%s %s (try %d): %d %q, want %d with %q", a[0], a[1], i+1, resp.StatusCode, b, want, strings.Join(a[3:], " "))
		}
		ts.Logf("%s %s: %d %s", a[0], a[1], resp.StatusCode, strings.TrimSpace(string(b)))
	}
}

// cmdGWSSE checks that a stream's first event arrives before the stream
// ends (the replica sends the second 2 s later): gwsse TOKENFILE URL.
func cmdGWSSE(ts *testscript.TestScript, neg bool, args []string) {
	req, err := http.NewRequest("GET", args[1], nil)
	ts.Check(err)
	req.Header.Set("Authorization", tokenHeader(ts, args[0]))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	ts.Check(err)
	firstAt := time.Since(start)
	rest, _ := io.ReadAll(rd)
	end := time.Since(start)
	if first != "data: first\n" || !strings.Contains(string(rest), "data: second") {
		ts.Fatalf("events: %q then %q", first, rest)
	}
	if end-firstAt < time.Second {
		ts.Fatalf("the first event came %s after the request and the end %s: it was held back until the stream ended", firstAt, end)
	}
	ts.Logf("first event after %s, end after %s", firstAt, end)
}

// cmdGWWS exchanges messages over a WebSocket: gwws TOKENFILE URL.
func cmdGWWS(ts *testscript.TestScript, neg bool, args []string) {
	cfg, err := websocket.NewConfig(args[1], "http://localhost/")
	ts.Check(err)
	cfg.Header = http.Header{"Authorization": {tokenHeader(ts, args[0])}}
	c, err := websocket.DialConfig(cfg)
	ts.Check(err)
	defer c.Close()
	for _, msg := range []string{"ping", "through the gateway"} {
		ts.Check(websocket.Message.Send(c, msg))
		var got string
		ts.Check(websocket.Message.Receive(c, &got))
		if got != msg {
			ts.Fatalf("echo: %q, want %q", got, msg)
		}
	}
}

// cmdGWLimit sends 5 requests at once-ish to a limited prefix and wants
// the first through and a later one refused with 429: gwlimit TOKENFILE URL.
func cmdGWLimit(ts *testscript.TestScript, neg bool, args []string) {
	var codes []int
	for range 5 {
		req, err := http.NewRequest("GET", args[1], nil)
		ts.Check(err)
		req.Header.Set("Authorization", tokenHeader(ts, args[0]))
		resp, err := http.DefaultClient.Do(req)
		ts.Check(err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[4] != 429 {
		ts.Fatalf("codes %v: want 200 first and 429 once over the limit", codes)
	}
	ts.Logf("codes %v", codes)
}

// cmdGWTLS fetches https://HOST/ from ADDR, trusting only the roots in
// ROOTFILE, retrying while the certificate is on its way, and checks the
// answer: gwtls ADDR HOST ROOTFILE CODE SUBSTRING.
func cmdGWTLS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 5 {
		ts.Fatalf("usage: gwtls ADDR HOST ROOTFILE CODE SUBSTRING")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(args[2]))) {
		ts.Fatalf("no certificate in %s", args[2])
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: args[1]},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, args[0])
		}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var last error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		resp, err := c.Get("https://" + args[1] + "/")
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strconv.Itoa(resp.StatusCode) != args[3] || !strings.Contains(string(b), args[4]) {
			ts.Fatalf("https://%s/: %d %q", args[1], resp.StatusCode, b)
		}
		ts.Logf("https://%s/: %d %s; certificate issued by %s for %v", args[1], resp.StatusCode, strings.TrimSpace(string(b)),
			resp.TLS.PeerCertificates[0].Issuer.CommonName, resp.TLS.PeerCertificates[0].DNSNames)
		return
	}
	ts.Fatalf("https://%s/ at %s: %v", args[1], args[0], last)
}
