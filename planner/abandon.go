package planner

import (
	"slices"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// A run whose job's host stops answering (an SSH fleet's host that is
// down or cut off) is left alone unless its retry policy lists
// "interruption": then the plan moves the run to hosts that answer. The
// job on the silent host cannot be stopped, and it may well still run,
// so its record is not dropped: it stays in the run's state, abandoned
// (OpAbandon), counts against its host's resources, and the first plan
// after the host answers again removes it. A host that comes back thus
// never keeps a job the state has forgotten.

// Abandoned reports whether in is a job its run left behind on a host
// that did not answer.
func Abandoned(in *state.Instance) bool { return attrString(in, AttrAbandonedAt) != "" }

// WithoutAbandoned is r without the jobs its run left behind (r itself
// when there are none): the jobs the run stands on.
func WithoutAbandoned(r *state.Resource) *state.Resource {
	live, _ := splitAbandoned(r)
	return live
}

// splitAbandoned returns r without its abandoned jobs, and those.
func splitAbandoned(r *state.Resource) (*state.Resource, []*state.Instance) {
	if r == nil || !slices.ContainsFunc(r.Instances, Abandoned) {
		return r, nil
	}
	live := *r
	live.Instances = nil
	var left []*state.Instance
	for _, in := range r.Instances {
		if Abandoned(in) {
			left = append(left, in)
		} else {
			live.Instances = append(live.Instances, in)
		}
	}
	return &live, left
}

// removableAbandoned are the abandoned jobs whose host answers again
// (refresh found out how they are), to remove now.
func (m *maker) removableAbandoned(left []*state.Instance) []*state.Instance {
	var out []*state.Instance
	for _, in := range left {
		if in.Status == providers.StatusUnknown {
			continue
		}
		if h := m.hostFor(in); h != nil && h.silent {
			continue
		}
		out = append(out, in)
	}
	return out
}

// movesOffSilentHost is the silent host a run is moved off (one of its
// unfinished jobs is there, and its retry policy lists "interruption",
// within its duration), or "".
func (m *maker) movesOffSilentHost(spec lang.Spec, prior *state.Resource) string {
	h := m.hostWhere(prior, func(h *host, in *state.Instance) bool { return h.silent && !finishedJob(in) })
	if h == "" || !m.retryAllows(spec, "interruption", prior) {
		return ""
	}
	return h
}

// DefaultRetryDuration is how long a retry policy without a duration
// resubmits a run: one hour, as in dstack.
const DefaultRetryDuration = time.Hour

// retryAllows reports whether a run's retry policy resubmits it on event:
// the policy lists the event, and, as dstack measures it for
// "interruption" and "error", the event happened less than the policy's
// duration (DefaultRetryDuration when unset) ago. The event's time is
// when the run's last job to end ended (AttrFinishedAt, which refresh
// records); a run with no ended job is having its event now (a host that
// stopped answering). ("no-capacity" is retried within apply: see
// retryPolicy.)
func (m *maker) retryAllows(spec lang.Spec, event string, prior *state.Resource) bool {
	_, p := runParts(spec)
	if p == nil || !p.Retry.Enabled() || !slices.Contains(p.Retry.OnEvents, event) {
		return false
	}
	window := DefaultRetryDuration
	if p.Retry.Duration != nil && *p.Retry.Duration > 0 {
		window = time.Duration(*p.Retry.Duration) * time.Second
	}
	var last time.Time
	for _, in := range prior.Instances {
		if at, err := time.Parse(time.RFC3339, attrString(in, providers.AttrFinishedAt)); err == nil && at.After(last) {
			last = at
		}
	}
	return last.IsZero() || m.now().Sub(last) < window
}

// abandonStep records a job on a silent host as abandoned.
func (m *maker) abandonStep(addr string, in *state.Instance) *Step {
	return m.newStep(&Step{Op: OpAbandon, Address: addr, Index: in.Index, Kind: instanceKind(in),
		Backend: in.Provider, Token: in.Token, ProviderID: in.ProviderID, HostStep: -1})
}
