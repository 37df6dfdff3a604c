package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/planner/render"
	"github.com/dstackai/dstack-go/state"
)

// deleteArgs are the flags of dstack's delete verbs.
type deleteArgs struct {
	files   []string
	vars    []string
	yes     bool
	force   bool
	noColor bool
	lock    lockFlags
}

func (d *deleteArgs) register(fs *flag.FlagSet) {
	fs.BoolVar(&d.yes, "y", false, "delete without asking for confirmation")
	fs.BoolVar(&d.yes, "yes", false, "the same as -y")
	fs.BoolVar(&d.force, "force", false, "also tear down the runs that use what is deleted, instead of refusing")
	fs.BoolVar(&d.noColor, "no-color", false, "disable colours (also NO_COLOR)")
	d.lock.register(fs)
}

// deleteOpts word one delete command's messages.
type deleteOpts struct {
	command  string // "fleet delete"
	question string
	// missing is the error for a target the state does not hold; nil
	// skips such targets (a file's resources never applied).
	missing func(addr string) error
	done    string
}

func runDelete(argv []string, s Streams, env Env) int {
	var d deleteArgs
	fs := newFlagSet("delete", "delete [options] [-f FILE]... [NAME|ADDRESS]...\n\n"+
		"dstack's delete: tears down the resources FILE declares (default: .dstack.yml),\n"+
		"or those named (a run, fleet, volume or gateway, by name or address), through\n"+
		"the planner, after you confirm. Refused while a run that is not deleted too\n"+
		"uses one of them, unless -force. The whole configuration's counterpart is\n"+
		"destroy.", s)
	fs.Var((*stringList)(&d.files), "f", "a configuration `FILE` whose resources to delete (repeatable)")
	fs.Var((*stringList)(&d.vars), "var", "set a variable of FILE: `NAME=VALUE` (repeatable)")
	d.register(fs)
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(d.files) == 0 && len(args) == 0 {
		if _, err := os.Stat(".dstack.yml"); err != nil {
			return fail(s, errors.New("delete: give a configuration file with -f FILE, or the names of what to delete (there is no .dstack.yml here)"))
		}
		d.files = []string{".dstack.yml"}
	}
	if len(d.files) > 0 && len(args) > 0 {
		return fail(s, errors.New("delete: give either -f FILE or names, not both"))
	}
	if len(d.files) > 0 {
		return deleteTargets(d, nil, s, env, deleteOpts{command: "delete", question: "Delete these resources?", done: "Deleted."})
	}
	return deleteTargets(d, args, s, env, deleteOpts{command: "delete", question: "Delete these resources?", done: "Deleted.",
		missing: func(addr string) error { return fmt.Errorf("%s does not exist in the state", addr) }})
}

// deleteTargets is dstack's delete as a targeted destroy: under the
// state's lock it refreshes the state, plans the destroy of targets (with
// d.files, every resource the files declare that the state holds) and of
// what depends on them, refuses when a run left out of targets still has
// jobs going (unless -force), shows the plan, asks, and applies it as
// apply does: journalled, fenced by the lease, with the state's history.
// A target may be a name without its kind, matched against the state.
func deleteTargets(d deleteArgs, targets []string, s Streams, env Env, o deleteOpts) int {
	ctx, cancel := commandContext()
	defer cancel()
	a := planArgs{files: d.files, vars: d.vars, destroy: true, refresh: true, lock: d.lock, noColor: d.noColor}
	cfg, ok := loadConfig(&a, s, env)
	if !ok {
		return ExitInvalid
	}
	ss, err := openSession(ctx, s, env, a.lock, o.command)
	if err != nil {
		return fail(s, err)
	}
	defer ss.release(ctx, s)
	r, err := refresh(ctx, ss, &a)
	if err != nil {
		return fail(s, err)
	}
	if len(d.files) > 0 {
		for _, res := range cfg.Sorted() {
			if addr := res.Address.String(); r.prior.Resource(addr) != nil {
				targets = append(targets, addr)
			}
		}
		if len(targets) == 0 {
			fmt.Fprintf(s.Stdout, "Nothing to delete: the state holds none of the resources %s declares.\n", strings.Join(d.files, ", "))
			return ExitOK
		}
	}
	for i, t := range targets {
		addr, err := resolveAddress(r.prior.Resource, t)
		if err != nil {
			return fail(s, err)
		}
		if addr == "" {
			return fail(s, o.missing(t))
		}
		targets[i] = addr
	}
	// The runs that use a target: the planner tears down those that
	// depend on one with it; a service published on a gateway is named
	// here, and goes too only with -force.
	using := runsUsing(r.prior, targets)
	a.targets = slices.Clone(targets)
	if d.force {
		a.targets = append(a.targets, using...)
	}
	p, err := r.plan(ss, cfg, &a)
	if err != nil {
		return fail(s, err)
	}
	if busy, err := busyRuns(ctx, ss, p, targets, using); err != nil {
		return fail(s, err)
	} else if len(busy) > 0 && !d.force {
		return fail(s, fmt.Errorf("%s is in use by %s, which %s not ended: stop %s first (dstack stop -y NAME), or give -force to tear %s down too",
			strings.Join(targets, ", "), strings.Join(busy, ", "), pluralWord(len(busy), "has", "have"), pluralWord(len(busy), "it", "them"), pluralWord(len(busy), "it", "them")))
	}
	if err := render.Text(s.Stdout, p, render.Options{Color: useColor(s.Stdout, env, d.noColor)}); err != nil {
		return fail(s, err)
	}
	if p.Empty() {
		return ExitOK
	}
	if !d.yes {
		ok, err := askYesNo(s, o.command, "\n"+o.question)
		if err != nil {
			return fail(s, err)
		}
		if !ok {
			fmt.Fprintln(s.Stdout, "Nothing deleted.")
			return ExitOK
		}
	}
	if code := carryOut(ctx, ss, p, s); code != ExitOK {
		return code
	}
	fmt.Fprintln(s.Stdout, o.done)
	return ExitOK
}

// resolveAddress turns a name or an address into the address of a
// resource the state holds ("" when none), or an error when a bare name
// names several.
func resolveAddress(lookup func(string) *state.Resource, t string) (string, error) {
	if _, err := lang.ParseAddress(t); err == nil {
		if lookup(t) != nil {
			return t, nil
		}
		return "", nil
	}
	var found []string
	for _, k := range lang.Kinds {
		if addr := (lang.Address{Kind: k, Name: t}).String(); lookup(addr) != nil {
			found = append(found, addr)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%q names %s: give the address of the one to delete", t, strings.Join(found, " and "))
}

// runsUsing are the runs in st, other than targets, that use one of them:
// that depend on it (the fleet they run on, a volume they mount) or, for
// a gateway, the services published on it.
func runsUsing(st *state.State, targets []string) []string {
	var out []string
	for _, r := range st.Resources {
		if !isRunAddress(r.Address) || slices.Contains(targets, r.Address) {
			continue
		}
		uses := slices.ContainsFunc(r.DependsOn, func(d string) bool { return slices.Contains(targets, d) })
		if gw := recordedSpecString(r, "gateway"); gw != "" && slices.Contains(targets, lang.Address{Kind: lang.KindGateway, Name: gw}.String()) {
			uses = true
		}
		if uses {
			out = append(out, r.Address)
		}
	}
	return out
}

// busyRuns are the runs that use the targets (using, and those the plan
// tears down because they depend on one) whose jobs have not all ended.
func busyRuns(ctx context.Context, ss *session, p *planner.Plan, targets, using []string) ([]string, error) {
	candidates := slices.Clone(using)
	for _, c := range p.Changes {
		if !slices.Contains(targets, c.Address) && !slices.Contains(candidates, c.Address) && isRunAddress(c.Address) {
			candidates = append(candidates, c.Address)
		}
	}
	slices.Sort(candidates)
	var busy []string
	for _, addr := range candidates {
		r := p.Prior.Resource(addr)
		if r == nil {
			continue
		}
		jobs, err := planner.ObserveRun(ctx, planner.WithoutAbandoned(r), ss.set)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(jobs, func(j planner.Job) bool { return !j.Finished() }) {
			busy = append(busy, addr)
		}
	}
	return busy, nil
}

// carryOut applies a plan under the session's lock, printing apply's
// progress lines; an interrupt cancels what is in flight (every step is
// recorded, and the next plan picks up from there).
func carryOut(ctx context.Context, ss *session, p *planner.Plan, s Streams) int {
	scrub := newScrubber(p)
	store := &planner.Store{Backend: ss.backend, Workspace: ss.ws, LockID: ss.lockID(), Version: ss.version()}
	opts := planner.ApplyOptions{Parallelism: 10, Events: scrub.events(textEvents(s.Stdout)), ToolVersion: version()}
	if ss.lease != nil {
		opts.Fence = ss.lease
		li := lockInfo("apply", ss.ws)
		opts.Holder = planner.Holder{Lock: ss.lease.Info.ID, Host: li.Host, PID: li.PID}
	}
	res, err := planner.Apply(ctx, p, store, ss.set, opts)
	if err != nil {
		return fail(s, scrub.err(err))
	}
	if err := res.Err(); err != nil {
		return fail(s, scrub.err(err))
	}
	return ExitOK
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
