package gatewayproc

import (
	"context"
	"fmt"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/state"
)

// Args are the dstack-gateway flags for this machine's gateway, from the
// environment (lookup): its listener ($DSTACK_GATEWAY_LISTEN,
// 127.0.0.1:8090 by default) and, for a local gateway with a domain and a
// lets-encrypt certificate, ACME ($DSTACK_ACME_CA, $DSTACK_ACME_CA_ROOT,
// $DSTACK_ACME_EMAIL) with HTTPS on $DSTACK_GATEWAY_HTTPS_LISTEN (:443);
// with $DSTACK_GATEWAY_TLS_CERT and $DSTACK_GATEWAY_TLS_KEY set, a gateway
// with a domain serves those certificate files instead of ACME's.
func Args(lookup func(string) (string, bool), set Settings) []string {
	get := func(k, def string) string {
		if v, ok := lookup(k); ok && v != "" {
			return v
		}
		return def
	}
	args := []string{"-listen", get("DSTACK_GATEWAY_LISTEN", "127.0.0.1:8090")}
	if cert, key := get("DSTACK_GATEWAY_TLS_CERT", ""), get("DSTACK_GATEWAY_TLS_KEY", ""); set.Domain != "" && cert != "" && key != "" {
		// Certificate files (a wildcard for *.DOMAIN) instead of ACME.
		return append(args, "-tls-cert", cert, "-tls-key", key, "-https-listen", get("DSTACK_GATEWAY_HTTPS_LISTEN", ":443"))
	}
	if set.Domain != "" && set.ACME {
		args = append(args, "-acme", "-https-listen", get("DSTACK_GATEWAY_HTTPS_LISTEN", ":443"))
		for _, f := range [][2]string{{"-acme-ca", "DSTACK_ACME_CA"}, {"-acme-ca-root", "DSTACK_ACME_CA_ROOT"}, {"-acme-email", "DSTACK_ACME_EMAIL"}} {
			if v := get(f[1], ""); v != "" {
				args = append(args, f[0], v)
			}
		}
	}
	return args
}

// Publish tells this machine's gateway the routes of the services st
// records (Routes), starting the gateway (Program, Start with Args) when
// there is a service and none answers; environ is the environment, as
// KEY=VALUE, the gateway is started in and read from. With no service
// and no gateway running it does nothing and returns a nil client. This
// is what `dstack apply` does after every apply, and what a control loop
// does after each of its actions.
func Publish(ctx context.Context, st *state.State, environ []string) (*Client, gateway.Table, error) {
	lookup := func(k string) (string, bool) {
		for i := len(environ) - 1; i >= 0; i-- {
			if key, v, ok := cut(environ[i]); ok && key == k {
				return v, true
			}
		}
		return "", false
	}
	t, set, err := Routes(st)
	if err != nil {
		return nil, t, fmt.Errorf("the gateway's routes: %w", err)
	}
	dir := Dir(lookup)
	c, running := Probe(ctx, dir)
	if len(t.Services) == 0 && !running {
		return nil, t, nil
	}
	if !running {
		path, _ := lookup("PATH")
		prog, err := Program(path)
		if err != nil {
			return nil, t, err
		}
		if c, err = Start(ctx, dir, prog, Args(lookup, set), environ); err != nil {
			return nil, t, err
		}
	}
	if err := c.Push(ctx, t); err != nil {
		return nil, t, err
	}
	return c, t, nil
}

func cut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return "", "", false
}
