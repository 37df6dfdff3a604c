package gatewayd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
	"github.com/dstackai/dstack-go/gateway/gatewaytest"
)

// startGateway runs the gateway process in this test until it ends and
// returns its client.
func startGateway(t *testing.T, dir string, args ...string) *gatewayproc.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, append([]string{"-listen", "127.0.0.1:0", "-data-dir", dir}, args...), testWriter{t})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, ok := gatewayproc.Probe(context.Background(), dir); ok {
			return c
		}
		select {
		case err := <-done:
			t.Fatalf("the gateway exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("the gateway did not start")
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func replica(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "replica got %s for %s", r.URL.Path, r.Host)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// httpsGet fetches https://host/path from addr, trusting roots, until it
// answers or the deadline passes (a certificate may still be on its way).
func httpsGet(t *testing.T, addr, host string, roots *x509.CertPool, within time.Duration) (string, *x509.Certificate) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get("https://" + host + "/hello")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return fmt.Sprintf("%d %s", resp.StatusCode, b), resp.TLS.PeerCertificates[0]
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("https://%s at %s: %v", host, addr, last)
	return "", nil
}

// TestACMECertificateFromPebble: a gateway with a domain gets a
// certificate for a service's host from a real ACME server (pebble,
// validating every challenge) and serves the service over TLS; the client
// trusts pebble's root only.
func TestACMECertificateFromPebble(t *testing.T) {
	dir := t.TempDir()
	pb := gatewaytest.StartPebble(t, dir)
	issuingRoots := pb.Roots
	gwDir := filepath.Join(dir, "gateway")
	c := startGateway(t, gwDir, "-https-listen", "127.0.0.1:0", "-acme",
		"-acme-ca", pb.DirectoryURL, "-acme-ca-root", pb.TLSCertFile, "-acme-email", "ops@example.test")
	if c.HTTPSAddr == "" {
		t.Fatal("the gateway has no HTTPS listener")
	}
	if err := c.Push(context.Background(), gateway.Table{Domain: "example.test", Services: []gateway.Service{{Name: "web", Replicas: []string{replica(t)}}}}); err != nil {
		t.Fatal(err)
	}
	got, cert := httpsGet(t, c.HTTPSAddr, "web.example.test", issuingRoots, 90*time.Second)
	if got != "200 replica got /hello for web.example.test" {
		t.Fatalf("over TLS: %q", got)
	}
	if !strings.Contains(cert.Issuer.CommonName, "Pebble") || cert.DNSNames[0] != "web.example.test" {
		t.Fatalf("certificate: issuer %q names %v", cert.Issuer.CommonName, cert.DNSNames)
	}
	// The certificate is kept: a restarted gateway serves it without
	// asking again.
	if files, _ := filepath.Glob(filepath.Join(gwDir, "acme", "certificates", "*", "web.example.test", "web.example.test.crt")); len(files) != 1 {
		t.Fatalf("stored certificates: %v", files)
	}
}

// TestCertificateFiles: -tls-cert/-tls-key serve the given certificate.
func TestCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key, roots := gatewaytest.SelfSigned(t, dir, "site", "web.example.test")
	c := startGateway(t, filepath.Join(dir, "gw"), "-https-listen", "127.0.0.1:0", "-tls-cert", cert, "-tls-key", key)
	if err := c.Push(context.Background(), gateway.Table{Domain: "example.test", Services: []gateway.Service{{Name: "web", Replicas: []string{replica(t)}}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := httpsGet(t, c.HTTPSAddr, "web.example.test", roots, 10*time.Second)
	if got != "200 replica got /hello for web.example.test" {
		t.Fatalf("over TLS: %q", got)
	}
}
