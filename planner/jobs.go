package planner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// StatusGone is a job's status when its provider no longer knows it.
const StatusGone = "gone"

// Job is one job of a run as its provider reports it now; Observe
// returns them without changing the state (what `ps` shows).
type Job struct {
	Address  string
	Index    int
	Backend  string
	Provider string // the job's ID at its provider
	// Status is the provider's (providers.Status*), the recorded one when
	// no provider answers for its backend, or StatusGone.
	Status string
	Reason string
	// Ports are the published ports, "HOST:CONTAINER,...".
	Ports string
	// Host is the address of the machine it runs on, with an SSH fleet
	// host's name.
	Host string
	// Abandoned: left on a host that did not answer (see Abandoned).
	Abandoned bool
}

// Finished reports whether the job has ended, one way or another.
func (j Job) Finished() bool {
	switch j.Status {
	case providers.StatusDone, providers.StatusFailed, providers.StatusStopped, providers.StatusTerminated, StatusGone:
		return true
	}
	return false
}

// Observe asks the providers how every job of the runs in st is doing.
// A backend without a provider in set leaves its jobs at their recorded
// status; a provider that fails to answer is an error.
func Observe(ctx context.Context, st *state.State, set providers.Set) ([]Job, error) {
	var out []Job
	for _, r := range st.Resources {
		if a, err := lang.ParseAddress(r.Address); err != nil || !a.Kind.IsRun() {
			continue
		}
		jobs, err := ObserveRun(ctx, r, set)
		if err != nil {
			return nil, err
		}
		out = append(out, jobs...)
	}
	return out, nil
}

// ObserveRun is Observe for one run, its jobs in the order it records them.
func ObserveRun(ctx context.Context, r *state.Resource, set providers.Set) ([]Job, error) {
	byBackend := map[string][]string{}
	for _, in := range r.Instances {
		if in.Token != "" {
			byBackend[in.Provider] = append(byBackend[in.Provider], in.Token)
		}
	}
	live := map[string]providers.Object{}
	for _, b := range slices.Sorted(maps.Keys(byBackend)) {
		p, err := set.For(b)
		if err != nil {
			continue // shown with its recorded status
		}
		objs, err := describe(ctx, p, byBackend[b])
		if err != nil {
			return nil, fmt.Errorf("asking %s about the jobs of %s: %w", b, r.Address, err)
		}
		maps.Copy(live, objs)
	}
	var out []Job
	for _, in := range r.Instances {
		j := Job{Address: r.Address, Index: in.Index, Backend: in.Provider, Provider: in.ProviderID,
			Status: in.Status, Ports: attrString(in, providers.AttrPorts), Abandoned: Abandoned(in)}
		if o, ok := live[in.Token]; ok {
			j.Status, j.Reason = o.Status, o.Reason
			if p := o.Attributes[providers.AttrPorts]; p != "" {
				j.Ports = p
			}
		} else if in.ProviderID != "" {
			j.Status = StatusGone
		}
		j.Host = attrString(in, AttrHostAddress)
		if name := attrString(in, providers.AttrHostID); name != "" && j.Host != "" {
			j.Host += " (" + name + ")" // an SSH fleet's host
		}
		out = append(out, j)
	}
	return out, nil
}

// RunFailed reports whether a run whose jobs have ended failed, and why:
// a task with stop_criteria master-done by its master's end, any other
// run by each of its jobs' (a job stopped by that criterion is not a
// failure). A run with a job still going has not failed.
func RunFailed(r *state.Resource, jobs []Job) (bool, string) {
	if len(jobs) == 0 {
		return false, ""
	}
	considered := jobs
	if recordedStopCriteria(r) == "master-done" {
		m := jobs[0]
		for _, j := range jobs {
			if j.Index < m.Index {
				m = j
			}
		}
		considered = []Job{m}
	}
	for _, j := range considered {
		if !j.Finished() {
			return false, ""
		}
	}
	for _, j := range considered {
		if j.Status != providers.StatusDone {
			why := fmt.Sprintf("%s[%d] %s", j.Address, j.Index, j.Status)
			if j.Reason != "" {
				why += " (" + j.Reason + ")"
			}
			return true, why
		}
	}
	return false, ""
}

// StopWorkers ends a distributed task whose stop_criteria is master-done
// once its master has ended, as the next apply would (see
// workersToStop): it asks the providers how the jobs are, and stops the
// workers still running, with their grace period. It returns the
// indexes of the workers it stopped.
func StopWorkers(ctx context.Context, r *state.Resource, set providers.Set) ([]int, error) {
	criteria := recordedStopCriteria(r)
	if criteria != "master-done" || len(r.Instances) < 2 {
		return nil, nil
	}
	jobs, err := ObserveRun(ctx, r, set)
	if err != nil {
		return nil, err
	}
	now := *r
	now.Instances = make([]*state.Instance, len(r.Instances))
	for i, in := range r.Instances {
		cp := *in
		cp.Status = jobs[i].Status
		now.Instances[i] = &cp
	}
	// Each worker stops within its own grace period: all at once, so
	// that stopping n of them takes one grace period, not n.
	var mu sync.Mutex
	var stopped []int
	var errs []error
	var g errgroup.Group
	g.SetLimit(16)
	for _, in := range workersToStop(criteria, &now) {
		g.Go(func() error {
			err := stopJob(ctx, set, in)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("stopping %s[%d]: %w", r.Address, in.Index, err))
			} else {
				stopped = append(stopped, in.Index)
			}
			return nil
		})
	}
	_ = g.Wait()
	slices.Sort(stopped)
	return stopped, errors.Join(errs...)
}

func stopJob(ctx context.Context, set providers.Set, in *state.Instance) error {
	p, err := set.For(in.Provider)
	if err != nil {
		return err
	}
	jc, ok := p.(providers.JobControl)
	if !ok {
		return fmt.Errorf("the %s backend cannot stop a job", in.Provider)
	}
	return jc.StopJob(ctx, in.ProviderID, false)
}

// recordedStopCriteria is the stop_criteria of the task configuration
// recorded in state ("" for other runs).
func recordedStopCriteria(r *state.Resource) string {
	spec, _ := r.Attributes[AttrSpec].(map[string]any)
	s, _ := spec["stop_criteria"].(string)
	return s
}

// stopCriteria is a configured run's stop_criteria ("" for other runs).
func stopCriteria(spec lang.Spec) string {
	if t, ok := spec.(*lang.Task); ok {
		return t.StopCriteria
	}
	return ""
}
