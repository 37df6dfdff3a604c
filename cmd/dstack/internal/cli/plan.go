package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/planner/render"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/registry"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
)

// ExitChanges is -detailed-exitcode's "the plan has changes".
const ExitChanges = 2

// planArgs are the flags plan, apply and destroy share.
type planArgs struct {
	files, vars, varFiles []string
	targets, replace      []string
	destroy, refreshOnly  bool
	refresh               bool
	detailed              bool
	lock                  lockFlags
	noColor, json, md     bool
	out                   string
	parallelism           int
	rateLimit             float64
	yes                   bool
	detach                bool
}

// following says whether apply follows the runs' output afterwards:
// dstack's own flow, `dstack apply -f FILE`, unless detached.
func (a *planArgs) following() bool { return len(a.files) > 0 && !a.detach && !a.json }

func (a *planArgs) register(fs *flag.FlagSet, apply bool) {
	fs.Var((*stringList)(&a.files), "f", "a configuration `FILE` (repeatable): plan its resources only, leaving the others as they are; default: every configuration file in the current directory, which is the whole configuration")
	fs.Var((*stringList)(&a.vars), "var", "set a variable: `NAME=VALUE` (repeatable)")
	fs.Var((*stringList)(&a.varFiles), "var-file", "read variables from `FILE` (repeatable)")
	fs.Var((*stringList)(&a.targets), "target", "plan only this `ADDRESS` and what it needs (repeatable)")
	fs.Var((*stringList)(&a.replace), "replace", "replace this `ADDRESS` even if its configuration did not change (repeatable)")
	fs.BoolVar(&a.destroy, "destroy", false, "plan to tear everything down")
	fs.BoolVar(&a.refresh, "refresh", true, "ask the providers about everything in state first")
	fs.BoolVar(&a.refreshOnly, "refresh-only", false, "only record what changed outside dstack")
	fs.BoolVar(&a.detailed, "detailed-exitcode", false, "exit 0 with no changes, 1 on error, 2 with changes")
	fs.BoolVar(&a.noColor, "no-color", false, "disable colours (also NO_COLOR)")
	fs.BoolVar(&a.json, "json", false, "print the plan as a JSON document (apply: a JSON-lines event stream)")
	a.lock.register(fs)
	if apply {
		fs.IntVar(&a.parallelism, "parallelism", 10, "how many steps run at once")
		fs.Float64Var(&a.rateLimit, "rate-limit", 0, "at most this many provider calls per second to each backend (0: no limit)")
		fs.BoolVar(&a.yes, "y", false, "apply without asking")
		fs.BoolVar(&a.yes, "auto-approve", false, "apply without asking")
		fs.BoolVar(&a.detach, "d", false, "with -f: do not follow the runs' output after applying")
		return
	}
	fs.BoolVar(&a.md, "markdown", false, "print the plan as Markdown for a pull-request comment")
	fs.StringVar(&a.out, "out", "", "save the plan to `FILE` for apply")
}

func (a *planArgs) mode() planner.Mode {
	switch {
	case a.destroy:
		return planner.Destroy
	case a.refreshOnly:
		return planner.RefreshOnly
	}
	return planner.Normal
}

// loadConfig loads -f files, or the configuration in the current
// directory, printing diagnostics.
func loadConfig(a *planArgs, s Streams, env Env) (*lang.Config, bool) {
	opts := load.Options{Vars: a.vars, VarFiles: a.varFiles, Environ: env}
	var cfg *lang.Config
	var diags lang.Diagnostics
	if len(a.files) > 0 {
		cfg, diags = load.Files(a.files, opts)
	} else {
		cfg, diags = load.Path(".", opts)
		if len(cfg.Files) == 0 && a.destroy {
			diags = nil // destroy needs no configuration
		}
	}
	opt := lang.TextOptions{Color: useColor(s.Stderr, env, a.noColor), Width: termWidth(s.Stderr)}
	_ = lang.WriteText(s.Stderr, diags, cfg.Sources, opt)
	return cfg, !diags.HasErrors()
}

// session is one locked run of plan or apply against the state.
type session struct {
	backend state.Backend
	ws      string
	lease   *state.Lease
	snap    *state.Snapshot
	set     *registry.Set
}

func (ss *session) lockID() string { return lockID(ss.lease) }

func (ss *session) release(ctx context.Context, s Streams) { releaseLock(ctx, s, ss.lease) }

// open locks the workspace and recovers a journal an interrupted apply
// left behind.
func openSession(ctx context.Context, s Streams, env Env, lf lockFlags, op string) (*session, error) {
	b, ws, err := openBackend(env)
	if err != nil {
		return nil, err
	}
	set, err := providerSet(env)
	if err != nil {
		return nil, err
	}
	ss := &session{backend: b, ws: ws, set: set}
	if ss.lease, err = holdLock(ctx, s, b, ws, lf, op); err != nil {
		return nil, err
	}
	snap, rec, err := planner.Recover(ctx, &planner.Store{Backend: b, Workspace: ws, LockID: ss.lockID()}, version())
	if err != nil {
		ss.release(ctx, s)
		return nil, err
	}
	switch {
	case rec.SetAside != "":
		fmt.Fprintf(s.Stderr, "Warning: the journal of an interrupted apply cannot be replayed (%s). It was set aside as %s; "+
			"going on from the last state written, and the refresh adopts the objects the journal recorded, where they exist.\n", rec.Problem, rec.SetAside)
	case rec.Replayed:
		fmt.Fprintln(s.Stderr, "Recovered the journal of an interrupted apply into the state.")
	}
	ss.snap = snap
	return ss, nil
}

// prior is the stored state, which the plan then owns (refresh changes
// it in place).
func (ss *session) prior() (*state.State, bool) {
	if ss.snap == nil {
		return state.New(version()), false
	}
	return ss.snap.State, true
}

func (ss *session) version() state.Version {
	if ss.snap == nil {
		return ""
	}
	return ss.snap.Version
}

// makePlan refreshes and plans.
func makePlan(ctx context.Context, ss *session, cfg *lang.Config, a *planArgs, s Streams) (*planner.Plan, error) {
	r, err := refresh(ctx, ss, a)
	if err != nil {
		return nil, err
	}
	return r.plan(ss, cfg, a)
}

// refreshed is the state as the providers see it, with their offers.
type refreshed struct {
	prior   *state.State
	existed bool
	drift   []planner.Drift
	offers  []offers.Offer
}

func refresh(ctx context.Context, ss *session, a *planArgs) (*refreshed, error) {
	r := &refreshed{}
	r.prior, r.existed = ss.prior()
	if a.refresh {
		var err error
		r.drift, err = planner.Refresh(ctx, r.prior, ss.set, planner.RefreshOptions{Holder: ss.lockID(), WriterGone: local.ProcessGone})
		if err != nil {
			return nil, err
		}
	}
	var err error
	if r.offers, err = ss.set.Offers(ctx); err != nil {
		return nil, fmt.Errorf("listing offers: %w", err)
	}
	return r, nil
}

func (r *refreshed) plan(ss *session, cfg *lang.Config, a *planArgs) (*planner.Plan, error) {
	return planner.Make(planner.Input{Config: cfg, Prior: r.prior, StateExisted: r.existed, Workspace: ss.ws, ToolVersion: version(),
		Offers: r.offers, HostsBackend: ss.set.HostsBackend(), Mode: a.mode(), Targets: a.targets, Replace: a.replace, Drift: r.drift,
		// dstack's `apply -f FILE` submits a finished task again.
		RerunFinished: len(a.files) > 0})
}

// lockAndPlan loads the configuration while it locks, reads and
// refreshes the state, since neither needs the other, then plans. The
// session it returns holds the lock; release it.
func lockAndPlan(ctx context.Context, a *planArgs, s Streams, env Env, op string) (*session, *planner.Plan, int) {
	type loaded struct {
		cfg *lang.Config
		ok  bool
	}
	ch := make(chan loaded, 1)
	go func() {
		cfg, ok := loadConfig(a, s, env)
		ch <- loaded{cfg, ok}
	}()
	ss, err := openSession(ctx, s, env, a.lock, op)
	var r *refreshed
	if err == nil {
		r, err = refresh(ctx, ss, a)
	}
	l := <-ch
	if err != nil || !l.ok {
		if ss != nil {
			ss.release(ctx, s)
		}
		if !l.ok {
			return nil, nil, ExitInvalid
		}
		return nil, nil, fail(s, err)
	}
	if len(a.files) > 0 && len(a.targets) == 0 {
		// dstack's form, `apply -f FILE`, is about that configuration
		// only: everything else stays as it is.
		for _, r := range l.cfg.Sorted() {
			a.targets = append(a.targets, r.Address.String())
		}
		if len(a.targets) == 0 {
			ss.release(ctx, s)
			return nil, nil, fail(s, errors.New("the files given with -f declare nothing"))
		}
	}
	p, err := r.plan(ss, l.cfg, a)
	if err != nil {
		ss.release(ctx, s)
		return nil, nil, fail(s, err)
	}
	return ss, p, ExitOK
}

func runPlan(argv []string, s Streams, env Env) int {
	var a planArgs
	fs := newFlagSet("plan", "plan [options]\n\nShows what apply would do: refreshes the state from the providers, diffs the\nconfiguration against it, and places runs on fleets or new machines. With -f\nFILE, as apply -f: only that file's resources, and a finished task runs again.\n\nExit status: 0 success, 1 error; with -detailed-exitcode 2 when there are changes.", s)
	a.register(fs, false)
	if _, err := parseFlags(fs, argv); err != nil {
		return flagExit(err)
	}
	ctx, cancel := commandContext()
	defer cancel()
	ss, p, code := lockAndPlan(ctx, &a, s, env, "plan")
	if ss == nil {
		return code
	}
	defer ss.release(ctx, s)
	if err := writePlan(s.Stdout, p, &a, env); err != nil {
		return fail(s, err)
	}
	if a.out != "" {
		if err := planner.Save(a.out, p); err != nil {
			return fail(s, err)
		}
		if !a.json {
			fmt.Fprintf(s.Stdout, "\nSaved the plan to %s. To carry it out exactly, run:\n    dstack apply %s\n", a.out, a.out)
		}
	}
	if a.detailed && !p.Empty() {
		return ExitChanges
	}
	return ExitOK
}

func writePlan(w io.Writer, p *planner.Plan, a *planArgs, env Env) error {
	switch {
	case a.json:
		return render.JSON(w, p)
	case a.md:
		return render.Markdown(w, p)
	}
	return render.Text(w, p, render.Options{Color: useColor(w, env, a.noColor)})
}

func runApply(argv []string, s Streams, env Env) int {
	return apply(argv, s, env, false)
}

func runDestroy(argv []string, s Streams, env Env) int {
	return apply(argv, s, env, true)
}

func apply(argv []string, s Streams, env Env, destroy bool) int {
	var a planArgs
	name := "apply"
	usage := "apply [options] [PLANFILE]\n\nPlans and, once you confirm, carries the plan out. Given a file saved with\nplan -out, carries out exactly that plan (refused if the state changed since).\n\n" +
		"With -f FILE (dstack's form) only that file's resources are planned, a task of\nit that has finished runs again, and apply then follows the runs' output until\nthey end (-d: it does not). Without -f the whole configuration in the current\ndirectory is planned, and a finished task stays as it is until its configuration\nchanges or -replace names it.\n\n" +
		"Exit status: 0 success, 1 error, 4 a run apply followed failed (a job exited\nnon-zero or was stopped); with -detailed-exitcode 2 when something changed."
	if destroy {
		name = "destroy"
		usage = "destroy [options]\n\nTears down everything in the state, after you confirm."
	}
	fs := newFlagSet(name, usage, s)
	a.register(fs, true)
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	a.destroy = a.destroy || destroy
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			if n == 1 {
				fmt.Fprintln(s.Stderr, "\nInterrupt received: starting nothing new, waiting for the steps in flight, then saving the state. Interrupt again to stop at once.")
				close(stop)
				continue
			}
			fmt.Fprintln(s.Stderr, "\nSecond interrupt: stopping now. Every step is recorded; the next plan picks up from here.")
			cancel()
			return
		}
	}()

	var p *planner.Plan
	var ss *session
	if len(args) > 1 {
		return fail(s, fmt.Errorf("apply takes at most one plan file, got %d arguments", len(args)))
	}
	if len(args) == 1 {
		p, err = planner.Load(args[0])
		if err != nil {
			return fail(s, err)
		}
		ss, err = openSession(ctx, s, env, a.lock, "apply")
		if err != nil {
			return fail(s, err)
		}
		defer ss.release(ctx, s)
		cur, existed := ss.prior()
		if err := p.CheckFresh(cur.Lineage, cur.Serial, existed); err != nil {
			return fail(s, err)
		}
		if p.Workspace != ss.ws {
			return fail(s, fmt.Errorf("the plan was made for workspace %q, the selected one is %q", p.Workspace, ss.ws))
		}
	} else {
		var code int
		ss, p, code = lockAndPlan(ctx, &a, s, env, name)
		if ss == nil {
			return code
		}
		defer ss.release(ctx, s)
		if !a.json {
			if err := render.Text(s.Stdout, p, render.Options{Color: useColor(s.Stdout, env, a.noColor)}); err != nil {
				return fail(s, err)
			}
		}
		if p.Empty() {
			// Nothing to change: the gateway still learns the services
			// (one restarted, or made by the Terraform provider).
			if st, ok := ss.prior(); ok && !a.destroy {
				afterApply(ctx, st, s, env, a.json)
			}
			return ExitOK
		}
		if !a.yes {
			ok, err := confirm(s, name)
			if err != nil {
				return fail(s, err)
			}
			if !ok {
				fmt.Fprintf(s.Stdout, "\n%s cancelled.\n", capitalize(name))
				return ExitInvalid
			}
		}
	}
	if p.Empty() {
		if !a.json {
			fmt.Fprintln(s.Stdout, "No changes.")
		}
		return ExitOK
	}
	events := textEvents(s.Stdout)
	if a.json {
		events = jsonEvents(s.Stdout)
	}
	// The secrets the runs reference, opened for their jobs: like the
	// plan's sensitive values, apply's progress lines, errors and the
	// runs' output never show them.
	cur, _ := ss.prior()
	secretValues, err := runSecrets(p, cur, env)
	if err != nil {
		return fail(s, err)
	}
	// A provider's message may quote what it was given: apply's progress
	// lines and errors never show the plan's sensitive values.
	scrub := newScrubber(p, slices.Collect(maps.Values(secretValues))...)
	events = scrub.events(events)
	store := &planner.Store{Backend: ss.backend, Workspace: ss.ws, LockID: ss.lockID(), Version: ss.version()}
	opts := planner.ApplyOptions{Parallelism: a.parallelism, RateLimit: a.rateLimit, Stop: stop, Events: events, ToolVersion: version(),
		Secrets: secretValues}
	if ss.lease != nil {
		// A lease that lapses or is lost fences the apply: it starts
		// nothing more, and the calls in flight finish (see
		// planner/fence.go).
		opts.Fence = ss.lease
		li := lockInfo("apply", ss.ws)
		opts.Holder = planner.Holder{Lock: ss.lease.Info.ID, Host: li.Host, PID: li.PID}
	}
	if wd, err := os.Getwd(); err == nil {
		opts.ConfigDir = wd
	}
	devEnvs := devEnvChanges(p)
	if len(devEnvs) > 0 {
		_, key, err := userSSHKey(env)
		if err != nil {
			return fail(s, fmt.Errorf("the dev environments' SSH key: %w", err))
		}
		opts.SSHKeys = []string{key}
	}
	res, err := planner.Apply(ctx, p, store, ss.set, opts)
	if err != nil {
		return fail(s, scrub.err(err))
	}
	if !a.json {
		fmt.Fprintf(s.Stdout, "\nApply complete: %d %s done, %d failed, %d skipped, %d not started.\n",
			res.Done, plural(res.Done, "step"), res.Failed, res.Skipped, res.NotStarted)
	}
	if err := res.Err(); err != nil {
		return fail(s, scrub.err(err))
	}
	forgetDevEnvs(p, res.State, env, s.Stderr)
	if !a.json {
		for _, addr := range devEnvs {
			if r := res.State.Resource(addr); r != nil {
				if err := announceDevEnv(ctx, ss.set, r, env, s.Stdout); err != nil {
					fmt.Fprintf(s.Stderr, "dstack: %s: %v\n", addr, err)
				}
			}
		}
	}
	// The gateway on this machine learns the services' replicas, and
	// apply says where each service is.
	afterApply(ctx, res.State, s, env, a.json)
	if a.following() {
		var runs []string
		for _, c := range p.Changes {
			if (c.Action == planner.Create || c.Action == planner.Replace) && isRunAddress(c.Address) {
				runs = append(runs, c.Address)
			}
		}
		ss.release(ctx, s)
		ss.lease = nil
		if len(devEnvs) > 0 {
			// Following a dev environment's output counts as being
			// attached to it (inactivity_duration), as in dstack.
			fmt.Fprintln(s.Stdout, "\nFollowing the output; Ctrl-C detaches, and the dev environment goes on (apply -d does not follow).")
		}
		out := newLogScrubber(s.Stdout, slices.Collect(maps.Values(secretValues)))
		fs := s
		fs.Stdout = out
		failed := followRuns(res.State, ss.set, runs, fs)
		_ = out.Flush()
		if len(failed) > 0 {
			fmt.Fprintf(s.Stderr, "Error: the run failed: %s\n", strings.Join(failed, "; "))
			return ExitRunFailed
		}
	}
	if a.detailed {
		return ExitChanges
	}
	return ExitOK
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// confirm asks for "yes" on a terminal, and refuses to guess without one.
func confirm(s Streams, what string) (bool, error) {
	f, ok := s.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, fmt.Errorf("%s needs confirmation, but there is no terminal to ask on: run it with -y (or -auto-approve) to %s without asking", what, what)
	}
	fmt.Fprintf(s.Stdout, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	line, err := bufio.NewReader(s.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return strings.TrimSpace(line) == "yes", nil
}

// textEvents prints apply's progress the way Terraform does.
func textEvents(w io.Writer) func(planner.Event) {
	var mu sync.Mutex
	return func(e planner.Event) {
		mu.Lock()
		defer mu.Unlock()
		inst := fmt.Sprintf("%s[%d]", e.Address, e.Index)
		switch e.Type {
		case planner.EventStepStart:
			switch e.Op {
			case planner.OpCreate:
				fmt.Fprintf(w, "%s: Creating...\n", inst)
			case planner.OpDelete:
				fmt.Fprintf(w, "%s: Destroying...\n", inst)
			case planner.OpStop:
				fmt.Fprintf(w, "%s: Stopping...\n", inst)
			}
		case planner.EventStepDone:
			switch e.Op {
			case planner.OpCreate:
				fmt.Fprintf(w, "%s: Creation complete after %s [id=%s]\n", inst, round(e.Elapsed), e.ID)
			case planner.OpDelete:
				fmt.Fprintf(w, "%s: Destruction complete after %s\n", inst, round(e.Elapsed))
			case planner.OpStop:
				fmt.Fprintf(w, "%s: Stopped after %s\n", inst, round(e.Elapsed))
			case planner.OpAbandon:
				fmt.Fprintf(w, "%s: Abandoned on a host that does not answer [id=%s]\n", inst, e.ID)
			case planner.OpCommit:
				fmt.Fprintf(w, "%s: Recorded\n", e.Address)
			case planner.OpForget:
				fmt.Fprintf(w, "%s: Removed from state\n", e.Address)
			}
		case planner.EventStepFailed:
			fmt.Fprintf(w, "%s: %s failed: %s\n", inst, e.Op, e.Message)
		case planner.EventFailover, planner.EventRetry, planner.EventProgress:
			fmt.Fprintf(w, "%s: %s\n", inst, e.Message)
		}
	}
}

func round(sec float64) string {
	return (time.Duration(sec*float64(time.Second)) / time.Millisecond * time.Millisecond).String()
}

// jsonEvents writes apply's events as JSON lines.
func jsonEvents(w io.Writer) func(planner.Event) {
	enc := json.NewEncoder(w)
	return func(e planner.Event) { _ = enc.Encode(e) }
}

// scrubber replaces a plan's sensitive values with the mask in what apply
// prints.
type scrubber struct{ r *strings.Replacer }

func newScrubber(p *planner.Plan, more ...string) scrubber {
	return scrubber{lang.Scrubber(append(p.SensitiveValues(), more...))}
}

func (sc scrubber) events(next func(planner.Event)) func(planner.Event) {
	if sc.r == nil {
		return next
	}
	return func(e planner.Event) {
		e.Message, e.ID = sc.r.Replace(e.Message), sc.r.Replace(e.ID)
		next(e)
	}
}

// err keeps the error for errors.Is and errors.As; only its message is
// scrubbed.
func (sc scrubber) err(err error) error {
	if sc.r == nil || err == nil {
		return err
	}
	msg := sc.r.Replace(err.Error())
	if msg == err.Error() {
		return err
	}
	return scrubbedError{err: err, msg: msg}
}

type scrubbedError struct {
	err error
	msg string
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }
