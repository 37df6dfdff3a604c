package gatewayd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
)

// requirePebble is the environment variable that makes a missing pebble
// a failure rather than a skip (.ci/run sets it).
const requirePebble = "DSTACK_REQUIRE_PEBBLE"

func pebbleBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	if p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "pebble"); fileExists(p) {
		return p
	}
	if os.Getenv(requirePebble) != "" {
		t.Fatalf("pebble is not installed (%s is set): run .ci/install-pebble.sh", requirePebble)
	}
	t.Skipf("pebble is not installed: run .ci/install-pebble.sh, or set %s=1 to make this a failure", requirePebble)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate and key for 127.0.0.1 and localhost.
func selfSigned(t *testing.T, dir, name string, hosts ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

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
	bin := pebbleBinary(t)
	dir := t.TempDir()
	pebbleCert, pebbleKey, pebbleTLSRoots := selfSigned(t, dir, "pebble-tls", "127.0.0.1", "localhost")
	acmePort, mgmtPort := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate": pebbleCert, "privateKey": pebbleKey, "httpPort": 5002, "tlsPort": 5001,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-strict=false")
	// Challenges are taken as valid: the test's host names resolve
	// nowhere, and the gateway's HTTP-01 handler is covered apart.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	mgmt := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pebbleTLSRoots}}, Timeout: 5 * time.Second}
	var rootPEM []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err == nil {
			rootPEM, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble's management endpoint: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	issuingRoots := x509.NewCertPool()
	if !issuingRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble's root: %q", rootPEM)
	}

	gwDir := filepath.Join(dir, "gateway")
	c := startGateway(t, gwDir, "-https-listen", "127.0.0.1:0", "-acme",
		"-acme-ca", fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort), "-acme-ca-root", pebbleCert, "-acme-email", "ops@example.test")
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
	cert, key, roots := selfSigned(t, dir, "site", "web.example.test")
	c := startGateway(t, filepath.Join(dir, "gw"), "-https-listen", "127.0.0.1:0", "-tls-cert", cert, "-tls-key", key)
	if err := c.Push(context.Background(), gateway.Table{Domain: "example.test", Services: []gateway.Service{{Name: "web", Replicas: []string{replica(t)}}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := httpsGet(t, c.HTTPSAddr, "web.example.test", roots, 10*time.Second)
	if got != "200 replica got /hello for web.example.test" {
		t.Fatalf("over TLS: %q", got)
	}
}
