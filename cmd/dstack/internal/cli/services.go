package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/state"
)

// publishServices tells this machine's gateway the routes of the
// services st records, starting the gateway when there is a service
// and none runs, and prints where each service is reached. With no
// service and no gateway running it does nothing.
func publishServices(ctx context.Context, st *state.State, w io.Writer, env Env) error {
	c, t, err := gatewayproc.Publish(ctx, st, env)
	if err != nil || c == nil {
		return err
	}
	if w == nil {
		return nil
	}
	for _, svc := range t.Services {
		note := ""
		if len(svc.Replicas) == 0 {
			note = " (no replica running: requests wait for one)"
		}
		fmt.Fprintf(w, "service.%s: %s%s\n", svc.Name, gatewayproc.URL(c, t, svc.Name), note)
	}
	var models []string
	for _, svc := range t.Services {
		if svc.Model != nil {
			models = append(models, svc.Model.Name)
		}
	}
	if len(models) > 0 {
		fmt.Fprintf(w, "Models (%s): %s (OpenAI-compatible; needs a token from dstack token create)\n", strings.Join(models, ", "), gatewayproc.ModelURL(c, t))
	}
	return nil
}

// afterApply publishes the services an apply left and says where they
// are; a gateway that cannot be reached is a warning: the runs are made.
func afterApply(ctx context.Context, st *state.State, s Streams, env Env, quiet bool) {
	if st == nil {
		return
	}
	out := s.Stdout
	if quiet {
		out = nil
	}
	if out != nil && hasService(st) {
		fmt.Fprintln(out)
	}
	if err := publishServices(ctx, st, out, env); err != nil {
		fmt.Fprintf(s.Stderr, "Warning: the services are not published on the gateway: %v\n", err)
	}
}

func hasService(st *state.State) bool {
	for _, r := range st.Resources {
		if strings.HasPrefix(r.Address, string(lang.KindService)+".") {
			return true
		}
	}
	return false
}

// runToken manages the tokens that services with auth accept.
func runToken(argv []string, s Streams, env Env) int {
	const usage = "token create NAME | token list | token revoke NAME\n\n" +
		"Tokens authenticate requests to services with auth (the default) and to the\n" +
		"model endpoint: Authorization: Bearer TOKEN. create prints the new token once;\n" +
		"the state keeps only its SHA-256. revoke removes it. A running gateway learns\n" +
		"of the change at once."
	if len(argv) == 0 {
		fmt.Fprintln(s.Stderr, "Usage: dstack "+usage)
		return ExitInvalid
	}
	var lf lockFlags
	fs := newFlagSet("token "+argv[0], usage, s)
	lf.register(fs)
	args, err := parseFlags(fs, argv[1:])
	if err != nil {
		return flagExit(err)
	}
	ctx, cancel := commandContext()
	defer cancel()
	var final *state.State
	switch argv[0] {
	case "create":
		if len(args) != 1 || !lang.ValidName(args[0]) {
			return fail(s, fmt.Errorf("token create takes one name: lower-case letters, digits and dashes, starting with a letter"))
		}
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return fail(s, err)
		}
		tok := "dstack_" + hex.EncodeToString(buf)
		err := mutate(ctx, s, env, lf, "token create", mayCreate, func(st *state.State) (bool, error) {
			if slices.ContainsFunc(st.Tokens, func(t state.Token) bool { return t.Name == args[0] }) {
				return false, fmt.Errorf("a token named %q exists already; revoke it first", args[0])
			}
			st.Tokens = append(st.Tokens, state.Token{Name: args[0], Hash: gateway.HashToken(tok), Created: time.Now().UTC().Format(time.RFC3339)})
			final = st
			return true, nil
		})
		if err != nil {
			return fail(s, err)
		}
		fmt.Fprintln(s.Stdout, tok)
		fmt.Fprintf(s.Stderr, "Token %s created. It is shown only now: the state keeps its hash.\n", args[0])
	case "revoke":
		if len(args) != 1 {
			return fail(s, fmt.Errorf("token revoke takes one name"))
		}
		err := mutate(ctx, s, env, lf, "token revoke", mustExist, func(st *state.State) (bool, error) {
			i := slices.IndexFunc(st.Tokens, func(t state.Token) bool { return t.Name == args[0] })
			if i < 0 {
				return false, fmt.Errorf("no token named %q", args[0])
			}
			st.Tokens = slices.Delete(st.Tokens, i, i+1)
			final = st
			return true, nil
		})
		if err != nil {
			return fail(s, err)
		}
		fmt.Fprintf(s.Stdout, "Token %s revoked.\n", args[0])
	case "list":
		snap, _, err := readCurrent(ctx, env)
		if err != nil {
			return fail(s, err)
		}
		tw := tabwriter.NewWriter(s.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tSHA-256")
		if snap != nil {
			for _, t := range snap.State.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s…\n", t.Name, t.Created, t.Hash[:min(12, len(t.Hash))])
			}
		}
		_ = tw.Flush()
		return ExitOK
	default:
		fmt.Fprintln(s.Stderr, "Usage: dstack "+usage)
		return ExitInvalid
	}
	// A running gateway takes the new tokens now; none is started here.
	if _, running := gatewayproc.Probe(ctx, gatewayproc.Dir(env.Get)); running && final != nil {
		if err := publishServices(ctx, final, nil, env); err != nil {
			fmt.Fprintf(s.Stderr, "Warning: the gateway did not take the new tokens: %v\n", err)
		}
	}
	return ExitOK
}
