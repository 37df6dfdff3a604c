package render

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Document is the JSON plan document (`dstack plan -json`, `dstack show
// -json`), in the spirit of `terraform show -json`:
//
//   - format_version: "1.0"; a consumer should refuse a major version it
//     does not know.
//   - mode: normal, destroy or refresh-only.
//   - prior_state: the lineage and serial the plan was made against.
//   - resource_drift: what refresh found changed outside dstack.
//   - resource_changes: one entry per address that changes. change.actions
//     is Terraform's list (["create"], ["update"], ["delete"],
//     ["delete","create"] or ["create","delete"] for a replacement,
//     ["read"]); dstack_action is dstack's own word, which adds "scale";
//     before and after are the configurations with sensitive values
//     masked ("(sensitive value)"), and sensitive_paths lists where they
//     are in after ("env.HF_TOKEN"); after_unknown marks what is known only after apply;
//     action_reason says why; replace_paths lists the fields that force a
//     replacement. instances lists the instance-level steps with the
//     chosen offer and the failover candidates.
//   - summary: the counts of the summary line and the cost change in USD
//     per hour.
//   - services: each configured service's url (https://NAME.DOMAIN/ on a
//     gateway with a domain, else its path on the gateway), model and
//     model_endpoint (OpenAI-compatible) when it serves one, replicas (the
//     declared count or range), and its current and planned replica
//     counts.
//   - control_loop: per resource, what dstack server does on its own
//     ("scales 1..3 on rps=10 (up after 5m, down after 10m)", "retries on
//     interruption for 1h", ...).
type Document struct {
	FormatVersion   string           `json:"format_version"`
	DstackVersion   string           `json:"dstack_version"`
	Mode            planner.Mode     `json:"mode"`
	Workspace       string           `json:"workspace"`
	PriorState      PriorState       `json:"prior_state"`
	ResourceDrift   []planner.Drift  `json:"resource_drift"`
	ResourceChanges []ResourceChange `json:"resource_changes"`
	Summary         SummaryJSON      `json:"summary"`
	// Services say where each service is reached and its replica counts
	// now and planned; ControlLoop what dstack server does on its own.
	Services    []planner.ServiceNote `json:"services,omitempty"`
	ControlLoop []planner.LoopNote    `json:"control_loop,omitempty"`
}

// PriorState names the state a plan was made against.
type PriorState struct {
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	Exists  bool   `json:"exists"`
}

// ResourceChange is one address's change.
type ResourceChange struct {
	Address      string        `json:"address"`
	Kind         string        `json:"kind"`
	Name         string        `json:"name"`
	Change       ChangeJSON    `json:"change"`
	DstackAction string        `json:"dstack_action"`
	Instances    []InstanceOps `json:"instances"`
	CostBefore   float64       `json:"cost_before_per_hour"`
	CostAfter    float64       `json:"cost_after_per_hour"`
	DependsOn    []string      `json:"depends_on,omitempty"`
}

// ChangeJSON is a change in Terraform's shape.
type ChangeJSON struct {
	Actions      []string        `json:"actions"`
	Before       json.RawMessage `json:"before"`
	After        json.RawMessage `json:"after"`
	AfterUnknown map[string]bool `json:"after_unknown"`
	ActionReason string          `json:"action_reason"`
	ReplacePaths [][]string      `json:"replace_paths,omitempty"`
	// SensitivePaths are the paths of after's masked values.
	SensitivePaths []string              `json:"sensitive_paths,omitempty"`
	Fields         []planner.FieldChange `json:"fields,omitempty"`
}

// InstanceOps is one instance-level step.
type InstanceOps struct {
	Index      int            `json:"index"`
	Action     string         `json:"action"` // create, delete, or abandon (a job left on a host that does not answer)
	ProviderID string         `json:"provider_id,omitempty"`
	Backend    string         `json:"backend,omitempty"`
	Offer      *offers.Offer  `json:"offer,omitempty"`
	Candidates []offers.Offer `json:"candidates,omitempty"`
	Host       string         `json:"host,omitempty"`
}

// SummaryJSON is the summary line's numbers.
type SummaryJSON struct {
	Provision        int     `json:"provision"`
	Update           int     `json:"update"`
	Scale            int     `json:"scale"`
	Replace          int     `json:"replace"`
	TearDown         int     `json:"tear_down"`
	Read             int     `json:"read"`
	NoChange         int     `json:"no_change"`
	CostDeltaPerHour float64 `json:"cost_delta_per_hour"`
	Line             string  `json:"line"`
}

func tfActions(c *planner.Change) []string {
	switch c.Action {
	case planner.Create:
		return []string{"create"}
	case planner.Delete:
		return []string{"delete"}
	case planner.Replace:
		if c.CreateBeforeDestroy {
			return []string{"create", "delete"}
		}
		return []string{"delete", "create"}
	case planner.Read:
		return []string{"read"}
	case planner.Update, planner.Scale:
		return []string{"update"}
	}
	return []string{"no-op"}
}

// NewDocument builds the JSON document of a plan.
func NewDocument(p *planner.Plan) *Document {
	s := p.Summarize()
	d := &Document{FormatVersion: planner.FormatVersion, DstackVersion: p.ToolVersion, Mode: p.Mode, Workspace: p.Workspace,
		PriorState:      PriorState{Lineage: p.Lineage, Serial: p.Serial, Exists: p.StateExisted},
		ResourceDrift:   append([]planner.Drift{}, p.Drift...),
		ResourceChanges: []ResourceChange{},
		Summary: SummaryJSON{Provision: s.Provision, Update: s.Update, Scale: s.Scale, Replace: s.Replace, TearDown: s.TearDown,
			Read: s.Read, NoChange: p.NoChange, CostDeltaPerHour: s.CostDelta, Line: s.Line()},
		Services: p.Services, ControlLoop: p.Loop,
	}
	for _, c := range p.Changes {
		rc := ResourceChange{Address: c.Address, Kind: string(c.Kind), Name: c.Address[strings.IndexByte(c.Address, '.')+1:],
			DstackAction: string(c.Action), CostBefore: c.CostBefore, CostAfter: c.CostAfter, DependsOn: c.DependsOn,
			Instances: []InstanceOps{},
			Change: ChangeJSON{Actions: tfActions(c), Before: nullIfEmpty(c.Before), After: nullIfEmpty(c.After),
				AfterUnknown: map[string]bool{}, ActionReason: c.Reason, Fields: c.Fields}}
		if c.Action == planner.Delete {
			rc.Change.After = json.RawMessage("null")
		} else if c.Sensitive != nil {
			rc.Change.SensitivePaths = c.Sensitive.Paths
		}
		for _, f := range c.Fields {
			if f.ForcesReplacement {
				rc.Change.ReplacePaths = append(rc.Change.ReplacePaths, []string{f.Field})
			}
		}
		for _, id := range c.Steps {
			st := p.Steps[id]
			if st.Op != planner.OpCreate && st.Op != planner.OpDelete && st.Op != planner.OpAbandon {
				continue
			}
			rc.Instances = append(rc.Instances, InstanceOps{Index: st.Index, Action: string(st.Op), ProviderID: st.ProviderID,
				Backend: st.Backend, Offer: st.Offer, Candidates: st.Candidates, Host: st.HostAddress})
			if st.Op == planner.OpCreate {
				rc.Change.AfterUnknown["instances.provider_id"] = true
				rc.Change.AfterUnknown["instances.ip"] = true
			}
		}
		d.ResourceChanges = append(d.ResourceChanges, rc)
	}
	return d
}

func nullIfEmpty(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}

// JSON writes the plan document, indented.
func JSON(w io.Writer, p *planner.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewDocument(p))
}
