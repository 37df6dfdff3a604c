package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// findRun finds a run in the state by address (task.train) or name.
func findRun(st *state.State, name string) (*state.Resource, error) {
	if r := st.Resource(name); r != nil {
		return r, nil
	}
	var found []*state.Resource
	for _, k := range []lang.Kind{lang.KindTask, lang.KindService, lang.KindDevEnvironment} {
		if r := st.Resource(string(k) + "." + name); r != nil {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no run named %q in the state (dstack ps -a lists them)", name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%q names more than one run; give its address, such as %s", name, found[0].Address)
}

func isRunAddress(addr string) bool {
	a, err := lang.ParseAddress(addr)
	return err == nil && a.Kind.IsRun()
}

// jobControl returns what can follow and stop an instance's job.
func jobControl(set providers.Set, in *state.Instance) (providers.JobControl, error) {
	p, err := set.For(in.Provider)
	if err != nil {
		return nil, err
	}
	jc, ok := p.(providers.JobControl)
	if !ok {
		return nil, fmt.Errorf("backend %s cannot stream logs or stop jobs", in.Provider)
	}
	return jc, nil
}

// readRuns reads the state without locking it (these commands only look,
// or act on jobs through their agents).
func readRuns(ctx context.Context, env Env) (*state.State, providers.Set, error) {
	snap, ws, err := readCurrent(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	if snap == nil {
		return nil, nil, fmt.Errorf("workspace %q has no state yet: nothing has been applied", ws)
	}
	set, err := providerSet(env)
	if err != nil {
		return nil, nil, err
	}
	planner.Recall(snap.State, set)
	return snap.State, set, nil
}

func runLogs(argv []string, s Streams, env Env) int {
	fs := newFlagSet("logs", "logs [options] RUN\n\nPrints a run's output (a task, service or dev environment, by name or address).", s)
	follow := fs.Bool("f", false, "follow the output until the job ends")
	replica := fs.Int("replica", 0, "the job (replica or node) to show")
	since := fs.String("since", "", "only the lines written since `WHEN`: a duration ago (30s, 10m, 2h, 1d) or an RFC 3339 time (2026-09-24T15:30:00Z)")
	t, code := openRun(fs, argv, s, env)
	if t == nil {
		return code
	}
	defer t.cancel()
	ctx, set, r := t.ctx, t.set, t.run
	i := slices.IndexFunc(r.Instances, func(in *state.Instance) bool { return in.Index == *replica })
	if i < 0 {
		return fail(s, fmt.Errorf("%s has no job %d", r.Address, *replica))
	}
	out := newLogScrubber(s.Stdout, allSecretValues(t.st, env, s))
	defer out.Flush()
	if *since != "" {
		from, err := parseSince(*since, time.Now())
		if err != nil {
			return fail(s, err)
		}
		if err := streamLogsSince(ctx, set, r.Instances[i], from, *follow, out); err != nil && ctx.Err() == nil {
			return fail(s, err)
		}
		return ExitOK
	}
	if err := streamLogs(ctx, set, r.Instances[i], *follow, out); err != nil && ctx.Err() == nil {
		return fail(s, err)
	}
	return ExitOK
}

// runTarget is the run a command acts on, with the state and providers.
type runTarget struct {
	ctx    context.Context
	cancel context.CancelFunc
	set    providers.Set
	run    *state.Resource
	// st is the state the run was found in.
	st *state.State
}

// openRun parses a command line that names one run and finds the run; it
// returns the exit code to stop with when it cannot.
func openRun(fs *flag.FlagSet, argv []string, s Streams, env Env) (*runTarget, int) {
	args, err := parseFlags(fs, argv)
	if err != nil {
		return nil, flagExit(err)
	}
	if len(args) != 1 {
		return nil, fail(s, fmt.Errorf("%s takes one run", fs.Name()))
	}
	ctx, cancel := commandContext()
	st, set, err := readRuns(ctx, env)
	if err == nil {
		var r *state.Resource
		if r, err = findRun(st, args[0]); err == nil {
			// The jobs a run left on hosts that did not answer are not
			// its own: logs, attach and stop act on the run's jobs.
			return &runTarget{ctx: ctx, cancel: cancel, set: set, run: planner.WithoutAbandoned(r), st: st}, ExitOK
		}
	}
	cancel()
	return nil, fail(s, err)
}

func streamLogs(ctx context.Context, set providers.Set, in *state.Instance, follow bool, w io.Writer) error {
	jc, err := jobControl(set, in)
	if err != nil {
		return err
	}
	rc, err := jc.Logs(ctx, in.ProviderID, 0, follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

func runStop(argv []string, s Streams, env Env) int {
	fs := newFlagSet("stop", "stop [options] RUN\n\nStops a run's jobs, all at once: SIGTERM, then SIGKILL after the grace period.\nThe next apply starts the run again if its configuration still declares it.\nAsks for confirmation on a terminal; -y stops without asking.", s)
	abort := fs.Bool("abort", false, "kill at once, without the grace period")
	fs.BoolVar(abort, "x", false, "the same as -abort")
	yes := fs.Bool("y", false, "stop without asking for confirmation")
	fs.BoolVar(yes, "yes", false, "the same as -y")
	t, code := openRun(fs, argv, s, env)
	if t == nil {
		return code
	}
	defer t.cancel()
	ctx, set, r := t.ctx, t.set, t.run
	if !*yes {
		ok, err := askYesNo(s, "stop", fmt.Sprintf("Stop the run %s (%d %s)?", r.Address, len(r.Instances), plural(len(r.Instances), "job")))
		if err != nil {
			return fail(s, err)
		}
		if !ok {
			fmt.Fprintln(s.Stdout, "Nothing stopped.")
			return ExitOK
		}
	}
	var mu sync.Mutex // guards s.Stdout
	err := stopJobs(ctx, set, r.Instances, *abort, func(in *state.Instance, err error) error {
		if err != nil {
			return fmt.Errorf("stopping %s[%d]: %w", r.Address, in.Index, err)
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(s.Stdout, "Stopped %s[%d]\n", r.Address, in.Index)
		return nil
	})
	if err != nil {
		return fail(s, err)
	}
	return ExitOK
}

// maxParallelStops bounds the jobs stopped at once: each waits out its
// grace period, so one after the other a run of n replicas took n grace
// periods to stop.
const maxParallelStops = 16

// stopJobs stops the jobs concurrently (at most maxParallelStops at a
// time) and calls done, from the goroutine that stopped it, as each one
// has; a failure to stop one does not cancel the others. It returns the
// errors done returned, joined.
func stopJobs(ctx context.Context, set providers.Set, jobs []*state.Instance, abort bool, done func(*state.Instance, error) error) error {
	var g errgroup.Group
	g.SetLimit(maxParallelStops)
	errs := make([]error, len(jobs))
	for i, in := range jobs {
		g.Go(func() error {
			jc, err := jobControl(set, in)
			if err == nil {
				err = jc.StopJob(ctx, in.ProviderID, abort)
			}
			errs[i] = done(in, err)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// followRuns streams the output of the runs an apply started, until
// their jobs end, and reports the runs that failed; an interrupt
// detaches and leaves them running (none failed, as far as it saw).
func followRuns(st *state.State, set providers.Set, addrs []string, s Streams) (failed []string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(s.Stderr, "\nDetached: the run goes on. Follow it again with dstack logs -f.")
			cancel()
		case <-ctx.Done():
		}
	}()
	for _, addr := range addrs {
		r := planner.WithoutAbandoned(st.Resource(addr))
		if r == nil || len(r.Instances) == 0 {
			continue
		}
		in := master(r)
		if _, err := jobControl(set, in); err != nil {
			continue
		}
		fmt.Fprintf(s.Stdout, "\n%s:\n", addr)
		if err := streamLogs(ctx, set, in, true, s.Stdout); err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.Stderr, "dstack: following %s: %v\n", addr, err)
		}
		if ctx.Err() != nil {
			return failed
		}
		stopped, err := planner.StopWorkers(ctx, r, set)
		if len(stopped) > 0 {
			fmt.Fprintf(s.Stdout, "\n%s: the master finished (stop_criteria: master-done); stopped %d %s\n", addr, len(stopped), plural(len(stopped), "worker"))
		}
		if err != nil {
			fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
		}
		if why, err := runFailed(ctx, r, set); err != nil {
			fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
		} else if why != "" {
			failed = append(failed, why)
		}
	}
	return failed
}

// runFailed waits until the followed run's jobs have all ended (its
// master's output ends a moment before the agent records how it
// exited) and says why it failed, "" when it did not.
func runFailed(ctx context.Context, r *state.Resource, set providers.Set) (string, error) {
	for {
		jobs, err := planner.ObserveRun(ctx, r, set)
		if err != nil {
			return "", err
		}
		if failed, why := planner.RunFailed(r, jobs); failed {
			return why, nil
		}
		if !slices.ContainsFunc(jobs, func(j planner.Job) bool { return !j.Finished() }) {
			return "", nil
		}
		// A job still going once the output ended: a worker's stop takes
		// its grace period, or the master's exit is not recorded yet.
		select {
		case <-ctx.Done():
			return "", nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// master is a run's job of rank 0 (its lowest index).
func master(r *state.Resource) *state.Instance {
	m := r.Instances[0]
	for _, in := range r.Instances {
		if in.Index < m.Index {
			m = in
		}
	}
	return m
}
