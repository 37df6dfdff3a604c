// Package planner turns a configuration and the state into a reviewable
// plan, and carries a plan out.
//
// [Make] refreshes nothing itself: callers run [Refresh] first (unless
// -refresh=false), which asks each provider about everything in state and
// reports drift. Make then diffs the configuration against the refreshed
// state into per-address [Change]s, places runs on fleet instances (bin
// packing) or on new machines from the cheapest offers, and orders the
// resulting [Step]s in a graph. [Apply] walks that graph with bounded
// parallelism, recording an intent before every create and the result
// after every step in the backend's journal, so a crash at any point
// leaves nothing untracked.
package planner

import (
	"encoding/json"
	"fmt"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// Action is what a plan does to one address.
type Action string

// The actions.
const (
	NoOp    Action = "no-op"
	Create  Action = "create"
	Update  Action = "update" // in place
	Replace Action = "replace"
	Delete  Action = "delete"
	Scale   Action = "scale" // fleet nodes, service replicas
	Read    Action = "read"  // adopt something that exists (a volume_id)
)

// FormatVersion is the version of saved plan files and of the JSON plan
// document.
const FormatVersion = "1.0"

// Mode is what kind of plan to make.
type Mode string

// The plan modes.
const (
	Normal      Mode = "normal"
	Destroy     Mode = "destroy"
	RefreshOnly Mode = "refresh-only"
)

// FieldChange is one top-level field of a resource that changes.
type FieldChange struct {
	Field  string `json:"field"`
	Before any    `json:"before,omitempty"`
	After  any    `json:"after,omitempty"`
	// ForcesReplacement marks a field that cannot change in place.
	ForcesReplacement bool `json:"forces_replacement,omitempty"`
	// Scales marks the field that sets the number of instances.
	Scales bool `json:"scales,omitempty"`
	// Sensitive hides both values.
	Sensitive bool `json:"sensitive,omitempty"`
}

// StepOp is what one step does.
type StepOp string

// The step operations.
const (
	OpCreate StepOp = "create" // make an object (instance, volume, gateway, job)
	OpDelete StepOp = "delete" // remove an object
	OpCommit StepOp = "commit" // record a resource's new configuration
	OpForget StepOp = "forget" // drop a resource from state once its objects are gone
	OpStop   StepOp = "stop"   // stop a running job, keeping its record (a task's stop_criteria)
	// OpAbandon records a job as left behind on a host that does not
	// answer, when its run moves to other hosts (retry on interruption):
	// the job may still run there, so its record stays, marked, and the
	// first plan after the host answers again removes it.
	OpAbandon StepOp = "abandon"
)

// isRecord reports whether a step only changes the state: it calls no
// provider.
func (op StepOp) isRecord() bool {
	return op == OpCommit || op == OpForget || op == OpAbandon
}

// Step is one node of the action graph: one provider call, or one state
// record.
type Step struct {
	ID      int                  `json:"id"`
	Op      StepOp               `json:"op"`
	Address string               `json:"address"`
	Index   int                  `json:"index"`
	Kind    providers.ObjectKind `json:"kind,omitempty"`
	// Backend names the provider that makes or removes the object.
	Backend string `json:"backend,omitempty"`
	// Offer is the chosen machine; Candidates are the next ones to fail
	// over to on a capacity or quota error.
	Offer      *offers.Offer  `json:"offer,omitempty"`
	Candidates []offers.Offer `json:"candidates,omitempty"`
	// HostStep is the step that creates the instance a job runs on, or -1;
	// HostToken names an instance that already exists.
	HostStep    int    `json:"host_step"`
	HostToken   string `json:"host_token,omitempty"`
	HostAddress string `json:"host_address,omitempty"`
	// Demand is what a job takes from its host.
	Demand *Demand `json:"demand,omitempty"`
	// Token and ProviderID name the object a delete removes.
	Token      string `json:"token,omitempty"`
	ProviderID string `json:"provider_id,omitempty"`
	// Pending says the object to delete is a create that an apply which
	// lost its lock may still make (see fence.go).
	Pending bool `json:"pending,omitempty"`
	// Release, on a delete, keeps the object's record (a finished job's,
	// whose own machine is released): the provider removes the object,
	// and the state marks the record released rather than dropping it.
	Release string `json:"release,omitempty"`
	// Deps are the steps that must finish first.
	Deps []int `json:"deps,omitempty"`
}

// Name is how messages and the graph call the step.
func (s *Step) Name() string {
	switch s.Op {
	case OpCommit, OpForget:
		return fmt.Sprintf("%s %s", s.Op, s.Address)
	}
	return fmt.Sprintf("%s %s[%d]", s.Op, s.Address, s.Index)
}

// Demand is the share of a host that a job takes.
type Demand struct {
	CPUs     int `json:"cpus"`
	MemoryMB int `json:"memory_mb"`
	GPUs     int `json:"gpus"`
}

// Change is what happens to one address.
type Change struct {
	Address string    `json:"address"`
	Kind    lang.Kind `json:"kind"`
	Action  Action    `json:"action"`
	// Reason says why: "new in configuration", "configuration changed",
	// "replacement requested", "not in configuration", "drift: ...".
	Reason string        `json:"reason,omitempty"`
	Fields []FieldChange `json:"fields,omitempty"`
	// Before and After are the configurations, sensitive values masked.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	// Spec is the new configuration unmasked, for the providers.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Sensitive names Spec's sensitive values (masked in After), nil when
	// there are none; apply records it in state with the configuration.
	Sensitive  *Sensitive `json:"sensitive,omitempty"`
	ConfigHash string     `json:"config_hash,omitempty"`
	DependsOn  []string   `json:"depends_on,omitempty"`
	// Steps are the change's steps, in order.
	Steps []int `json:"steps,omitempty"`
	// InstancesBefore and InstancesAfter count machines, replicas or jobs.
	InstancesBefore int `json:"instances_before"`
	InstancesAfter  int `json:"instances_after"`
	// CostBefore and CostAfter are USD per hour.
	CostBefore          float64 `json:"cost_before"`
	CostAfter           float64 `json:"cost_after"`
	CreateBeforeDestroy bool    `json:"create_before_destroy,omitempty"`
	// Dir is the directory of the file the resource is written in: a
	// run's repos and files resolve relative local paths from it.
	Dir string `json:"dir,omitempty"`
}

// Drift is something refresh found changed outside dstack.
type Drift struct {
	Address    string `json:"address"`
	Index      int    `json:"index"`
	ProviderID string `json:"provider_id,omitempty"`
	Message    string `json:"message"`
}

// Plan is a reviewable, saveable set of changes.
type Plan struct {
	FormatVersion string `json:"format_version"`
	ToolVersion   string `json:"dstack_version"`
	Mode          Mode   `json:"mode"`
	Workspace     string `json:"workspace"`
	// Lineage and Serial are those of the state the plan was made
	// against; StateExisted is false when there was none.
	Lineage      string `json:"lineage"`
	Serial       uint64 `json:"serial"`
	StateExisted bool   `json:"state_existed"`
	// Changes are every address that changes, sorted; NoChange counts the
	// others.
	Changes  []*Change `json:"changes"`
	NoChange int       `json:"no_change"`
	Steps    []*Step   `json:"steps"`
	Drift    []Drift   `json:"drift,omitempty"`
	// Prior is the refreshed state the plan applies onto.
	Prior *state.State `json:"prior_state"`
	// Sources is the configuration snapshot: each file's contents.
	Sources map[string]string `json:"sources,omitempty"`
	Targets []string          `json:"targets,omitempty"`
	Replace []string          `json:"replace,omitempty"`
	Outputs map[string]any    `json:"outputs,omitempty"`
	// Services say where each service is reached and its replica counts;
	// Loop what the control loop (dstack server) does on its own.
	Services []ServiceNote `json:"services,omitempty"`
	Loop     []LoopNote    `json:"control_loop,omitempty"`
}

// Empty reports whether applying the plan would change nothing.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 && len(p.Drift) == 0 }

// Summary counts the changes by what the summary line calls them.
type Summary struct {
	Provision, Update, Scale, Replace, TearDown, Read int
	CostDelta                                         float64
}

// Summarize counts the plan's changes.
func (p *Plan) Summarize() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			s.Provision++
		case Update:
			s.Update++
		case Scale:
			s.Scale++
		case Replace:
			s.Replace++
		case Delete:
			s.TearDown++
		case Read:
			s.Read++
		}
		s.CostDelta += c.CostAfter - c.CostBefore
	}
	return s
}

// Line is the summary line.
func (s Summary) Line() string {
	sign := "+"
	d := s.CostDelta
	if d < 0 {
		sign, d = "-", -d
	}
	line := fmt.Sprintf("Plan: %d to provision, %d to scale, %d to replace, %d to tear down.", s.Provision, s.Scale, s.Replace, s.TearDown)
	if s.Update > 0 {
		line = fmt.Sprintf("Plan: %d to provision, %d to update, %d to scale, %d to replace, %d to tear down.", s.Provision, s.Update, s.Scale, s.Replace, s.TearDown)
	}
	return fmt.Sprintf("%s Cost: %s$%.2f/h", line, sign, d)
}
