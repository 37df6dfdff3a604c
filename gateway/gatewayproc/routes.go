package gatewayproc

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// Settings are what the gateway process is started with, from the
// local gateway the state records (its domain and certificate).
type Settings struct {
	// Domain is the local gateway's domain ("" without one).
	Domain string
	// ACME: get certificates for the domain (certificate type
	// lets-encrypt).
	ACME bool
}

// Routes builds the gateway's table from a state: every service that
// has a replica running on this machine, with the service's auth,
// strip_prefix, model and rate limits, and the tokens. The domain is
// that of a gateway of the local backend in the same state.
func Routes(st *state.State) (gateway.Table, Settings, error) {
	var t gateway.Table
	var set Settings
	for _, r := range st.Resources {
		a, err := lang.ParseAddress(r.Address)
		if err != nil {
			continue
		}
		spec, err := recordedSpec(r)
		if err != nil || spec == nil {
			continue
		}
		switch s := spec.(type) {
		case *lang.Gateway:
			if s.Backend == "local" && s.Domain != "" && set.Domain == "" {
				set.Domain = strings.TrimPrefix(s.Domain, "*.")
				set.ACME = s.Certificate == nil || s.Certificate.Type == "lets-encrypt"
			}
		case *lang.Service:
			t.Services = append(t.Services, service(a.Name, s, r))
		}
	}
	t.Domain = set.Domain
	for _, tok := range st.Tokens {
		t.Tokens = append(t.Tokens, tok.Hash)
	}
	sort.Slice(t.Services, func(i, j int) bool { return t.Services[i].Name < t.Services[j].Name })
	return t, set, t.Validate()
}

func recordedSpec(r *state.Resource) (lang.Spec, error) {
	raw, ok := r.Attributes[planner.AttrSpec]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	spec, err := lang.DecodeSpec(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Address, err)
	}
	return spec, nil
}

func service(name string, s *lang.Service, r *state.Resource) gateway.Service {
	// dstack's defaults: auth and strip_prefix are on unless turned off.
	svc := gateway.Service{Name: name, Auth: s.Auth == nil || *s.Auth, KeepPrefix: s.StripPrefix != nil && !*s.StripPrefix,
		HTTPS: s.HTTPS == nil || s.HTTPS.Auto || s.HTTPS.Enabled, Replicas: []string{}}
	if m := s.Model; m != nil {
		svc.Model = &gateway.Model{Name: m.Name, Format: m.Format, Prefix: m.Prefix}
	}
	for _, rl := range s.RateLimits {
		g := gateway.RateLimit{Prefix: rl.Prefix, RPS: rl.RPS, Burst: rl.Burst}
		if rl.Key != nil && rl.Key.Type == "header" {
			g.Header = rl.Key.Header
		}
		svc.RateLimits = append(svc.RateLimits, g)
	}
	if s.Port == nil {
		return svc
	}
	for _, in := range r.Instances {
		if in.Status != providers.StatusRunning {
			continue
		}
		ip, _ := in.Attributes[providers.AttrIP].(string)
		ports, _ := in.Attributes[providers.AttrPorts].(string)
		if hp := hostPort(ports, s.Port.ContainerPort); ip != "" && hp != "" {
			svc.Replicas = append(svc.Replicas, "http://"+joinHost(ip, hp))
		}
		if svc.Model != nil && svc.Model.Created == 0 {
			if c, _ := in.Attributes[planner.AttrCreatedAt].(string); c != "" {
				if at, err := time.Parse(time.RFC3339, c); err == nil {
					svc.Model.Created = at.Unix()
				}
			}
		}
	}
	return svc
}

// hostPort finds the host side of container port c in "HOST:CONTAINER,...".
func hostPort(ports string, c int) string {
	for _, pair := range strings.Split(ports, ",") {
		h, ct, ok := strings.Cut(pair, ":")
		if ok && ct == strconv.Itoa(c) && h != "" && h != "0" {
			return h
		}
	}
	return ""
}

func joinHost(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

// URL is where a service is reached through the gateway c.
func URL(c *Client, t gateway.Table, name string) string {
	https := true
	for _, svc := range t.Services {
		if svc.Name == name {
			https = svc.HTTPS
		}
	}
	if t.Domain != "" {
		if c.HTTPSAddr != "" && https {
			return "https://" + name + "." + t.Domain + portSuffix(c.HTTPSAddr, "443") + "/"
		}
		return "http://" + name + "." + t.Domain + portSuffix(strings.TrimPrefix(c.URL, "http://"), "80") + "/"
	}
	return c.URL + "/proxy/services/" + gateway.DefaultProject + "/" + name + "/"
}

// ModelURL is the base URL of the OpenAI-compatible endpoint.
func ModelURL(c *Client, t gateway.Table) string {
	if t.Domain != "" {
		if c.HTTPSAddr != "" {
			return "https://gateway." + t.Domain + portSuffix(c.HTTPSAddr, "443") + "/v1"
		}
		return "http://gateway." + t.Domain + portSuffix(strings.TrimPrefix(c.URL, "http://"), "80") + "/v1"
	}
	return c.URL + "/v1"
}

func portSuffix(addr, def string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || addr[i+1:] == def {
		return ""
	}
	return addr[i:]
}
