package planner

import (
	"fmt"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// A task run without a fleet on a cloud backend gets a machine of its
// own (a job with an offer and no host). As dstack does with the
// instance of a run's auto-created fleet, that machine is released once
// the run has finished and stayed so for the run's idle_duration
// (DefaultOwnMachineIdle when unset, never when "off"): the plan deletes
// the job at the provider, which terminates its machine, and keeps the
// job's record (status, exit code, where its logs were), marked
// released, so the finished run is still listed. The control loop's
// plans carry the release out unasked; so does any apply after the time.

// DefaultOwnMachineIdle is how long the machine of a finished run
// without a fleet is kept: 5 minutes, dstack's idle_duration for the
// fleets it creates for runs.
const DefaultOwnMachineIdle = 5 * time.Minute

// Released reports whether in is a finished job whose own machine was
// released.
func Released(in *state.Instance) bool { return attrString(in, AttrReleasedAt) != "" }

// ownMachine reports whether in is a job on a machine made for it on a
// cloud backend: no fleet host, an offer it was launched from. The
// local backend's offer is the machine dstack runs on, and Kubernetes
// pods are not machines: neither is released.
func ownMachine(in *state.Instance) bool {
	if instanceKind(in) != providers.KindJob || attrString(in, AttrHost) != "" || in.Attributes[AttrOffer] == nil {
		return false
	}
	return in.Provider != "local" && in.Provider != "kubernetes"
}

// idleOwnMachines are the jobs of a finished task whose own machines
// have been idle past the run's idle_duration, and why they go.
func (m *maker) idleOwnMachines(spec lang.Spec, prior *state.Resource) ([]*state.Instance, []string) {
	t, ok := spec.(*lang.Task)
	if !ok || prior == nil || !taskFinished(prior) {
		return nil, nil
	}
	idle := DefaultOwnMachineIdle
	if d := t.IdleDuration; d != nil {
		if *d < 0 {
			return nil, nil // "off": kept until the run is destroyed
		}
		idle = time.Duration(*d) * time.Second
	}
	now := m.now()
	var out []*state.Instance
	var why []string
	for _, in := range prior.Instances {
		if !ownMachine(in) || Released(in) || in.ProviderID == "" || Abandoned(in) || machineGone(in) {
			continue
		}
		at, err := time.Parse(time.RFC3339, attrString(in, providers.AttrFinishedAt))
		if err != nil || now.Sub(at) < idle {
			continue
		}
		out = append(out, in)
		why = append(why, fmt.Sprintf("job %d: run finished %s ago; own machine idle past idle_duration (%s)",
			in.Index, now.Sub(at).Round(time.Second), lang.Duration(idle/time.Second)))
	}
	return out, why
}

// machineGone reports whether a finished job's machine ended with it:
// terminated or interrupted (a spot interruption notice), or ended
// outside dstack. There is nothing left to release.
func machineGone(in *state.Instance) bool {
	return in.Status == providers.StatusTerminated || attrString(in, AttrEndedOutside) != "" ||
		in.Attributes[providers.AttrTermination] == "interruption"
}

// releaseStep deletes a finished job's own machine, keeping its record.
func (m *maker) releaseStep(addr string, in *state.Instance, reason string) *Step {
	s := m.deleteStep(addr, in)
	s.Release = reason
	return s
}
