package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

func runShow(argv []string, s Streams, env Env) int {
	fs := newFlagSet("show", "show [options] [PLANFILE]\n\nShows a saved plan, or without one the resources in the state.", s)
	asJSON := fs.Bool("json", false, "print as JSON")
	md := fs.Bool("markdown", false, "print a saved plan as Markdown")
	noColor := fs.Bool("no-color", false, "disable colours (also NO_COLOR)")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(args) > 1 {
		return fail(s, fmt.Errorf("show takes at most one plan file"))
	}
	if len(args) == 1 {
		p, err := planner.Load(args[0])
		if err != nil {
			return fail(s, err)
		}
		if err := writePlan(s.Stdout, p, &planArgs{json: *asJSON, md: *md, noColor: *noColor}, env); err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	st, err := maskedState(env)
	if err != nil {
		return fail(s, err)
	}
	if *asJSON {
		if err := printJSON(s.Stdout, st); err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	writeStateText(s, st)
	return ExitOK
}

func writeStateText(s Streams, st *state.State) {
	if len(st.Resources) == 0 {
		fmt.Fprintln(s.Stdout, "The state is empty.")
		return
	}
	for _, r := range st.Resources {
		fmt.Fprintf(s.Stdout, "# %s\n", r.Address)
		for _, in := range r.Instances {
			var extras []string
			for _, k := range []string{providers.AttrIP, planner.AttrHostAddress} {
				if v, ok := in.Attributes[k]; ok {
					extras = append(extras, fmt.Sprintf("%s=%v", k, v))
				}
			}
			fmt.Fprintf(s.Stdout, "  [%d] %-20s %-12s %s %s\n", in.Index, in.ProviderID, in.Status, in.Provider, strings.Join(extras, " "))
		}
	}
}

func runGraph(argv []string, s Streams, env Env) int {
	var a planArgs
	fs := newFlagSet("graph", "graph [options] [PLANFILE]\n\nPrints the action graph of the plan (or of a saved plan) in Graphviz DOT;\nwith -type=config, the configuration's resources and their dependencies.", s)
	fs.Var((*stringList)(&a.files), "f", "a configuration `FILE` (repeatable)")
	fs.Var((*stringList)(&a.vars), "var", "set a variable: `NAME=VALUE` (repeatable)")
	fs.Var((*stringList)(&a.varFiles), "var-file", "read variables from `FILE` (repeatable)")
	fs.BoolVar(&a.destroy, "destroy", false, "the graph of a destroy plan")
	kind := fs.String("type", "plan", "plan or config")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(args) == 1 {
		p, err := planner.Load(args[0])
		if err != nil {
			return fail(s, err)
		}
		if err := planner.WriteDOT(s.Stdout, p); err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	cfg, ok := loadConfig(&a, s, env)
	if !ok {
		return ExitInvalid
	}
	if *kind == "config" {
		if err := planner.WriteConfigDOT(s.Stdout, cfg); err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	if *kind != "plan" {
		return fail(s, fmt.Errorf("-type must be plan or config, not %q", *kind))
	}
	ctx, cancel := commandContext()
	defer cancel()
	// The graph reads the state without locking it or asking providers.
	b, ws, err := openBackend(env)
	if err != nil {
		return fail(s, err)
	}
	set, err := providerSet(env)
	if err != nil {
		return fail(s, err)
	}
	ss := &session{backend: b, ws: ws, set: set}
	if snap, err := b.Read(ctx, ws); err == nil {
		ss.snap = snap
	}
	p, err := makePlan(ctx, ss, cfg, &a, s)
	if err != nil {
		return fail(s, err)
	}
	if err := planner.WriteDOT(s.Stdout, p); err != nil {
		return fail(s, err)
	}
	return ExitOK
}

func runOutput(argv []string, s Streams, env Env) int {
	fs := newFlagSet("output", "output [options] [ADDRESS]\n\nPrints what the state records about each resource (or one): its instances'\nIDs, status, addresses and offers, secrets masked.", s)
	asJSON := fs.Bool("json", false, "print as JSON")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	st, err := maskedState(env)
	if err != nil {
		return fail(s, err)
	}
	out := map[string]any{}
	for _, r := range st.Resources {
		if len(args) > 0 && r.Address != args[0] {
			continue
		}
		var insts []map[string]any
		for _, in := range r.Instances {
			m := map[string]any{"index": in.Index, "id": in.ProviderID, "status": in.Status, "backend": in.Provider}
			for k, v := range in.Attributes {
				if k != planner.AttrDemand && k != planner.AttrKind {
					m[k] = v
				}
			}
			insts = append(insts, m)
		}
		out[r.Address] = map[string]any{"instances": insts}
	}
	for k, o := range st.Outputs {
		out[k] = o.Value
	}
	if len(args) > 0 && len(out) == 0 {
		return fail(s, fmt.Errorf("%s is not in the state", args[0]))
	}
	if *asJSON {
		if err := printJSON(s.Stdout, out); err != nil {
			return fail(s, err)
		}
		return ExitOK
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(out[k])
		fmt.Fprintf(s.Stdout, "%s = %s\n", k, b)
	}
	return ExitOK
}

// maskedState reads the selected workspace's state, secrets masked.
func maskedState(env Env) (*state.State, error) {
	ctx, cancel := commandContext()
	defer cancel()
	snap, _, err := readCurrent(ctx, env)
	if err != nil {
		return nil, err
	}
	return snap.State.Masked(), nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
