// Package gatewayd is the gateway's process (the dstack-gateway
// program): the public listener(s), the admin listener, and the files
// through which the dstack CLI finds it in its directory:
//
//	gateway.addr   the public HTTP listener's address
//	https.addr     the HTTPS listener's address, when it has one
//	admin.addr     the admin API's address
//	admin.token    the admin API's bearer token (made at first start)
//	routes.json    the last routing table, loaded again at start
//	acme/          ACME account and certificates (with -acme)
package gatewayd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/acme"
)

// Run runs the gateway until ctx ends.
func Run(ctx context.Context, argv []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("dstack-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "public HTTP address")
	httpsListen := fs.String("https-listen", "", "public HTTPS address (with -acme or -tls-cert)")
	adminListen := fs.String("admin-listen", "127.0.0.1:0", "admin API address")
	dir := fs.String("data-dir", "", "directory for the gateway's files (required)")
	useACME := fs.Bool("acme", false, "get certificates for the table's domain over ACME")
	acmeCA := fs.String("acme-ca", "", "ACME directory URL (Let's Encrypt when empty)")
	acmeEmail := fs.String("acme-email", "", "ACME account email")
	acmeRoot := fs.String("acme-ca-root", "", "PEM file of roots that the ACME server's HTTPS certificate is checked against")
	certFile := fs.String("tls-cert", "", "certificate file (PEM) for the HTTPS listener")
	keyFile := fs.String("tls-key", "", "key file (PEM) of -tls-cert")
	queue := fs.Duration("queue-timeout", gateway.DefaultQueueTimeout, "how long a request waits for a service scaled to zero")
	if err := fs.Parse(argv); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The heap is small and short-lived (a request's headers and
		// buffers): collecting less often buys requests per second.
		debug.SetGCPercent(400)
	}
	if *dir == "" {
		return errors.New("-data-dir is required")
	}
	if (*certFile == "") != (*keyFile == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if *useACME && *certFile != "" {
		return errors.New("-acme and -tls-cert exclude each other")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", *dir, err)
	}
	logger := log.New(stderr, "", log.LstdFlags)
	token, err := adminToken(*dir)
	if err != nil {
		return err
	}
	s := gateway.New(gateway.Options{QueueTimeout: *queue, Logf: logger.Printf})
	routes := filepath.Join(*dir, "routes.json")
	if b, err := os.ReadFile(routes); err == nil {
		var t gateway.Table
		if err := json.Unmarshal(b, &t); err == nil {
			if err := s.SetTable(t); err != nil {
				logger.Printf("ignoring %s: %v", routes, err)
			}
		}
	}
	s.OnTable(func(t gateway.Table) {
		b, _ := json.Marshal(t)
		if err := writeFile(routes, b); err != nil {
			logger.Printf("saving the routes: %v", err)
		}
	})

	pub, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	adm, err := net.Listen("tcp", *adminListen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *adminListen, err)
	}
	var httpHandler http.Handler = s
	var tlsConfig *tls.Config
	var acmeHTTP func(http.Handler) http.Handler
	switch {
	case *useACME:
		o := acme.Options{CA: *acmeCA, Email: *acmeEmail, Dir: filepath.Join(*dir, "acme"), HTTPPort: pub.Addr().(*net.TCPAddr).Port}
		if *acmeRoot != "" {
			pem, err := os.ReadFile(*acmeRoot)
			if err != nil {
				return fmt.Errorf("reading -acme-ca-root: %w", err)
			}
			o.RootCAs = x509.NewCertPool()
			if !o.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("-acme-ca-root %s holds no PEM certificate", *acmeRoot)
			}
		}
		m, err := acme.New(s, o)
		if err != nil {
			return err
		}
		acmeHTTP = m.HTTPHandler
		tlsConfig = m.TLSConfig()
	case *certFile != "":
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("loading the certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	}
	var tl net.Listener
	if tlsConfig != nil {
		if *httpsListen == "" {
			return errors.New("-acme and -tls-cert need -https-listen")
		}
		if tl, err = net.Listen("tcp", *httpsListen); err != nil {
			return fmt.Errorf("listening on %s: %w", *httpsListen, err)
		}
		// Plain HTTP requests for services with https go to HTTPS.
		redirect := s.HTTPRedirecting(tl.Addr().(*net.TCPAddr).Port)
		if *useACME {
			httpHandler = acmeHTTP(redirect)
		} else {
			httpHandler = redirect
		}
	}
	servers := []*http.Server{
		{Handler: httpHandler, ReadHeaderTimeout: 30 * time.Second},
		{Handler: s.AdminHandler(token), ReadHeaderTimeout: 30 * time.Second},
	}
	errs := make(chan error, 3)
	// Plain HTTP through the Front: simple requests answered on the
	// connection's goroutine, the rest by servers[0].
	front := &gateway.Front{Server: servers[0]}
	go func() { errs <- front.Serve(pub) }()
	go func() { errs <- servers[1].Serve(adm) }()
	if tl != nil {
		hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsConfig}
		servers = append(servers, hs)
		go func() { errs <- hs.Serve(tls.NewListener(tl, tlsConfig)) }()
		if err := writeFile(filepath.Join(*dir, "https.addr"), []byte(tl.Addr().String())); err != nil {
			return err
		}
	} else {
		_ = os.Remove(filepath.Join(*dir, "https.addr"))
	}
	// The address files last: their presence says the gateway answers.
	if err := writeFile(filepath.Join(*dir, "admin.addr"), []byte(adm.Addr().String())); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*dir, "gateway.addr"), []byte(pub.Addr().String())); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*dir, "gateway.pid"), []byte(strconv.Itoa(os.Getpid()))); err != nil {
		return err
	}
	logger.Printf("gateway on http://%s, admin on %s", pub.Addr(), adm.Addr())
	select {
	case <-ctx.Done():
	case err := <-errs:
		return fmt.Errorf("serving: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = front.Shutdown(sctx)
	for _, hs := range servers[1:] {
		_ = hs.Shutdown(sctx)
	}
	return nil
}

// adminToken reads the admin token, making one at first start.
func adminToken(dir string) (string, error) {
	p := filepath.Join(dir, "admin.token")
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(buf)
	if err := writeFile(p, []byte(tok)); err != nil {
		return "", err
	}
	return tok, nil
}

// writeFile replaces path's content atomically, readable by its owner
// only.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
