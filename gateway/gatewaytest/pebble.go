package gatewaytest

import (
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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequirePebble makes a missing pebble a failure rather than a skip
// (.ci/run sets it).
const RequirePebble = "DSTACK_REQUIRE_PEBBLE"

// Pebble is a running pebble, Let's Encrypt's ACME test server.
type Pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// TLSCertFile is pebble's own HTTPS certificate (PEM), the root an
	// ACME client must trust to reach it.
	TLSCertFile string
	// RootPEM is the root that pebble's certificates chain to, from its
	// management endpoint.
	RootPEM []byte
	// Roots holds RootPEM.
	Roots *x509.CertPool
}

// StartPebble runs pebble (installed by .ci/install-pebble.sh) until t
// ends. Every challenge is taken as valid (PEBBLE_VA_ALWAYS_VALID): the
// tests' host names resolve nowhere.
func StartPebble(t testing.TB, dir string) *Pebble {
	t.Helper()
	bin := pebbleBinary(t)
	certFile, keyFile, tlsRoots := SelfSigned(t, dir, "pebble-tls", "127.0.0.1", "localhost")
	acmePort, mgmtPort := FreePort(t), FreePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate": certFile, "privateKey": keyFile, "httpPort": 5002, "tlsPort": 5001,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-strict=false")
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	mgmt := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsRoots}}, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err == nil {
			root, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			pool := x509.NewCertPool()
			if resp.StatusCode == 200 && pool.AppendCertsFromPEM(root) {
				return &Pebble{DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort), TLSCertFile: certFile, RootPEM: root, Roots: pool}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Fatalf("pebble's management endpoint does not answer: %v\n%s", err, log)
		}
	}
}

// HavePebble reports whether pebble is installed (on PATH or in
// GOPATH/bin).
func HavePebble() bool { return findPebble() != "" }

func findPebble() string {
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "pebble")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

func pebbleBinary(t testing.TB) string {
	t.Helper()
	if p := findPebble(); p != "" {
		return p
	}
	if os.Getenv(RequirePebble) != "" {
		t.Fatalf("pebble is not installed (%s is set): run .ci/install-pebble.sh", RequirePebble)
	}
	t.Skipf("pebble is not installed: run .ci/install-pebble.sh, or set %s=1 to make this a failure", RequirePebble)
	return ""
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SelfSigned writes a self-signed certificate and key for hosts into
// dir (NAME.pem, NAME-key.pem) and returns them with a pool holding it.
func SelfSigned(t testing.TB, dir, name string, hosts ...string) (certFile, keyFile string, pool *x509.CertPool) {
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
