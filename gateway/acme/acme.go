// Package acme gets and renews the gateway's certificates over ACME, with
// certmagic (the ACME library Caddy is built on). It is apart from package
// gateway so that dstack, which uses gateway's types, does not link it:
// only dstack-gateway does.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/dstackai/dstack-go/gateway"
)

// Options say where a gateway with a domain gets its certificates.
type Options struct {
	// CA is the ACME directory URL (Let's Encrypt's when empty).
	CA string
	// Email is the account's contact address (none when empty).
	Email string
	// RootCAs, when set, are the roots the ACME server's own HTTPS
	// certificate is checked against (a private ACME server).
	RootCAs *x509.CertPool
	// Dir keeps the account and certificates.
	Dir string
	// HTTPPort is the port the gateway answers HTTP-01 challenges on
	// (80 when zero); the gateway's HTTP listener serves them.
	HTTPPort int
	// Logger logs certificate management (nothing when nil).
	Logger *zap.Logger
}

// CertManager gets and renews certificates for the hosts of a table with
// a domain, through certmagic: RUN.DOMAIN for each service and
// gateway.DOMAIN (the model endpoint).
type CertManager struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	mu     sync.Mutex
	names  map[string]bool
}

// New returns a certificate manager for s's table: a name is managed
// as soon as a table lists it, and a TLS handshake for a name of the
// current table that has no certificate yet gets one on demand.
func New(s *gateway.Server, o Options) (*CertManager, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("acme: the gateway needs a directory for its certificates")
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &CertManager{names: map[string]bool{}}
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           logger,
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Dir},
		Logger:  logger,
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: func(ctx context.Context, name string) error {
			if !hostsOf(s.Table())[strings.ToLower(name)] {
				return fmt.Errorf("%s is not a host of this gateway", name)
			}
			return nil
		}},
	})
	ca := o.CA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	m.issuer = certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA: ca, Email: o.Email, Agreed: true, TrustedRoots: o.RootCAs,
		// HTTP-01 through the gateway's own HTTP listener; TLS-ALPN would
		// need port 443 for certmagic itself.
		DisableTLSALPNChallenge: true,
		AltHTTPPort:             o.HTTPPort,
		Logger:                  logger,
	})
	cfg.Issuers = []certmagic.Issuer{m.issuer}
	m.cfg = cfg
	s.OnTable(func(t gateway.Table) { m.manage(t) })
	m.manage(s.Table())
	return m, nil
}

func (m *CertManager) manage(t gateway.Table) {
	var fresh []string
	m.mu.Lock()
	for h := range hostsOf(t) {
		if !m.names[h] {
			m.names[h] = true
			fresh = append(fresh, h)
		}
	}
	m.mu.Unlock()
	if len(fresh) > 0 {
		_ = m.cfg.ManageAsync(context.Background(), fresh)
	}
}

// TLSConfig is the configuration of the gateway's HTTPS listener.
func (m *CertManager) TLSConfig() *tls.Config {
	c := m.cfg.TLSConfig()
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	return c
}

// HTTPHandler wraps the gateway's plain HTTP handler so that it answers
// ACME HTTP-01 challenges.
func (m *CertManager) HTTPHandler(h http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(h)
}

// hostsOf lists the host names a table serves under its domain.
func hostsOf(t gateway.Table) map[string]bool {
	out := map[string]bool{}
	d := strings.ToLower(strings.TrimSuffix(t.Domain, "."))
	if d == "" {
		return out
	}
	out["gateway."+d] = true
	for _, s := range t.Services {
		out[s.Name+"."+d] = true
	}
	return out
}
