package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// DefaultProject is dstack's default project name, the PROJECT of path
// routes when the table names none.
const DefaultProject = "main"

// Table is everything the gateway routes by. It is replaced whole.
type Table struct {
	// Project appears in path routes: /proxy/services/PROJECT/RUN/.
	Project string `json:"project,omitempty"`
	// Domain, when set, routes RUN.DOMAIN to the service RUN.
	Domain string `json:"domain,omitempty"`
	// Tokens are the SHA-256 hashes (hex) of the tokens accepted where a
	// token is needed.
	Tokens []string `json:"tokens,omitempty"`
	// Services are the services published.
	Services []Service `json:"services"`
}

// Service is one published service.
type Service struct {
	// Name is the run's name.
	Name string `json:"name"`
	// Auth requires a token.
	Auth bool `json:"auth,omitempty"`
	// KeepPrefix sends path-routed requests with their whole path
	// (strip_prefix: false); by default the prefix is taken off.
	KeepPrefix bool `json:"keep_prefix,omitempty"`
	// HTTPS, on a gateway that serves TLS, redirects the service's plain
	// HTTP requests at RUN.DOMAIN to HTTPS (dstack's https: true or
	// auto); without it the service is served on both.
	HTTPS bool `json:"https,omitempty"`
	// Model publishes the service on the OpenAI-compatible endpoint.
	Model *Model `json:"model,omitempty"`
	// RateLimits limit requests per path prefix and client.
	RateLimits []RateLimit `json:"rate_limits,omitempty"`
	// Replicas are the base URLs of the ready replicas
	// ("http://127.0.0.1:32768"). None: requests wait (scale to zero).
	Replicas []string `json:"replicas"`
}

// Model is a service's model on the OpenAI-compatible endpoint.
type Model struct {
	Name string `json:"name"`
	// Format is the API the model's server speaks: "openai" (only that
	// is routed; "tgi" is refused with 501).
	Format string `json:"format,omitempty"`
	// Prefix is where the server's OpenAI API is: /v1 when unset.
	Prefix string `json:"prefix,omitempty"`
	// Created is when the model was published (Unix seconds).
	Created int64 `json:"created,omitempty"`
}

// RateLimit is one of a service's rate limits.
type RateLimit struct {
	// Prefix is the path prefix it applies to ("/" when unset).
	Prefix string `json:"prefix,omitempty"`
	// RPS is the requests per second allowed.
	RPS float64 `json:"rps"`
	// Burst is how many requests above the rate are let through at once.
	Burst int `json:"burst,omitempty"`
	// Header, when set, counts requests per value of this header instead
	// of per client IP address.
	Header string `json:"header,omitempty"`
}

// HashToken is what a table stores for a token: its SHA-256, hex.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Validate checks the table: names, URLs, limits.
func (t *Table) Validate() error {
	if t.Project != "" && !nameRE.MatchString(t.Project) {
		return fmt.Errorf("invalid project %q", t.Project)
	}
	if strings.ContainsAny(t.Domain, "/: ") {
		return fmt.Errorf("invalid domain %q", t.Domain)
	}
	seen := map[string]bool{}
	models := map[string]string{}
	for i, s := range t.Services {
		if !nameRE.MatchString(s.Name) {
			return fmt.Errorf("services[%d]: invalid name %q", i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("services[%d]: service %q is listed twice", i, s.Name)
		}
		seen[s.Name] = true
		for j, r := range s.Replicas {
			u, err := url.Parse(r)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("service %s: replicas[%d]: %q is not an http(s) base URL", s.Name, j, r)
			}
		}
		prefixes := map[string]bool{}
		for j, rl := range s.RateLimits {
			p := cmpOr(rl.Prefix, "/")
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("service %s: rate_limits[%d]: prefix %q does not start with /", s.Name, j, rl.Prefix)
			}
			if prefixes[p] {
				return fmt.Errorf("service %s: rate_limits[%d]: prefix %q has a limit already; each limit needs its own prefix", s.Name, j, p)
			}
			prefixes[p] = true
			if rl.RPS <= 0 {
				return fmt.Errorf("service %s: rate_limits[%d]: rps must be positive", s.Name, j)
			}
			if rl.Burst < 0 {
				return fmt.Errorf("service %s: rate_limits[%d]: burst must not be negative", s.Name, j)
			}
		}
		if m := s.Model; m != nil {
			if m.Name == "" {
				return fmt.Errorf("service %s: model has no name", s.Name)
			}
			if other, dup := models[m.Name]; dup {
				return fmt.Errorf("service %s: model %q is also served by %s", s.Name, m.Name, other)
			}
			models[m.Name] = s.Name
		}
	}
	return nil
}

// compiled is a table made ready for routing.
type compiled struct {
	table    Table
	project  string
	domain   string
	tokens   map[string]bool
	services map[string]*route
	models   map[string]*route
	// modelList is the models in name order, for /v1/models.
	modelList []*route
}

func compile(t Table, prev *compiled, s *Server) *compiled {
	c := &compiled{table: t, project: cmpOr(t.Project, DefaultProject), domain: strings.ToLower(strings.TrimSuffix(t.Domain, ".")),
		tokens: map[string]bool{}, services: map[string]*route{}, models: map[string]*route{}}
	for _, h := range t.Tokens {
		c.tokens[strings.ToLower(h)] = true
	}
	for _, svc := range t.Services {
		var old *route
		if prev != nil {
			old = prev.services[svc.Name]
		}
		r := newRoute(svc, old, s)
		c.services[svc.Name] = r
		if svc.Model != nil {
			c.models[svc.Model.Name] = r
			c.modelList = append(c.modelList, r)
		}
	}
	sort.Slice(c.modelList, func(i, j int) bool { return c.modelList[i].svc.Model.Name < c.modelList[j].svc.Model.Name })
	return c
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
