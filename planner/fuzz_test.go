package planner

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dstackai/dstack-go/state"
)

// FuzzReadPlan: a saved plan file is untrusted input (it may be damaged
// or edited); reading it never panics, and a plan it accepts has steps
// that Apply can walk: every reference in range and no cycle.
func FuzzReadPlan(f *testing.F) {
	p := &Plan{FormatVersion: FormatVersion, Mode: Normal, Prior: state.New("test"),
		Steps:   []*Step{{ID: 0, Op: OpCreate, Address: "volume.a", HostStep: -1}, {ID: 1, Op: OpCommit, Address: "volume.a", HostStep: -1, Deps: []int{0}}},
		Changes: []*Change{{Address: "volume.a", Action: Create, Steps: []int{0, 1}}}}
	good, err := json.Marshal(planFile{Kind: planKind, Plan: p})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"deps":[0]`), []byte(`"deps":[1]`), 1))
	f.Add([]byte(`{"kind":"dstack-plan"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ReadPlan(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, s := range p.Steps {
			for _, d := range s.Deps {
				if d < 0 || d >= len(p.Steps) {
					t.Fatalf("accepted a dependency out of range: %d", d)
				}
			}
		}
		if stepCycle(p.Steps) != nil {
			t.Fatal("accepted a cycle")
		}
		changed := map[string]bool{}
		for _, c := range p.Changes {
			changed[c.Address] = true
		}
		for _, s := range p.Steps {
			if (s.Op == OpCreate || s.Op == OpCommit) && !changed[s.Address] {
				t.Fatalf("accepted step %d for an address the plan does not change", s.ID)
			}
		}
	})
}
