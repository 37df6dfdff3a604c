package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/renameio/v2"
)

// planFile is the saved plan's envelope.
type planFile struct {
	Kind string `json:"kind"`
	*Plan
}

const planKind = "dstack-plan"

// Save writes a saved plan: a self-contained JSON document with the
// configuration snapshot, the refreshed state the plan applies onto, the
// steps and their offers. It holds secrets of the state, so the file is
// written readable by its owner only.
func Save(path string, p *Plan) error {
	data, err := json.Marshal(planFile{Kind: planKind, Plan: p})
	if err != nil {
		return fmt.Errorf("encoding the plan: %w", err)
	}
	if err := renameio.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the plan: %w", err)
	}
	return nil
}

// ReadPlan reads a plan Save wrote.
func ReadPlan(r io.Reader, name string) (*Plan, error) {
	var f planFile
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s is not a saved plan: %w", name, err)
	}
	if f.Kind != planKind || f.Plan == nil {
		return nil, fmt.Errorf("%s is not a saved plan (made with dstack plan -out)", name)
	}
	if f.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s is a plan of format %s; this dstack reads format %s", name, f.FormatVersion, FormatVersion)
	}
	if f.Prior == nil {
		return nil, fmt.Errorf("%s is damaged: it has no prior state", name)
	}
	for i, s := range f.Steps {
		if s == nil || s.ID != i {
			return nil, fmt.Errorf("%s is damaged: step %d is out of place", name, i)
		}
		for _, d := range s.Deps {
			if d < 0 || d >= len(f.Steps) {
				return nil, fmt.Errorf("%s is damaged: step %d depends on step %d", name, i, d)
			}
		}
		if s.HostStep >= len(f.Steps) {
			return nil, fmt.Errorf("%s is damaged: step %d runs on step %d", name, i, s.HostStep)
		}
	}
	changed := map[string]bool{}
	for _, c := range f.Changes {
		if c == nil {
			return nil, fmt.Errorf("%s is damaged: an empty change", name)
		}
		changed[c.Address] = true
	}
	for _, s := range f.Steps {
		if (s.Op == OpCreate || s.Op == OpCommit) && !changed[s.Address] {
			return nil, fmt.Errorf("%s is damaged: step %d is for %s, which the plan does not change", name, s.ID, s.Address)
		}
		if s.HostStep < -1 {
			return nil, fmt.Errorf("%s is damaged: step %d runs on step %d", name, s.ID, s.HostStep)
		}
	}
	for _, c := range f.Changes {
		for _, id := range c.Steps {
			if id < 0 || id >= len(f.Steps) {
				return nil, fmt.Errorf("%s is damaged: %s names step %d", name, c.Address, id)
			}
		}
	}
	if cyc := stepCycle(f.Steps); cyc != nil {
		return nil, fmt.Errorf("%s is damaged: its steps form a cycle", name)
	}
	return f.Plan, nil
}

// Load reads a saved plan from a file.
func Load(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadPlan(f, path)
}

// CheckFresh refuses a saved plan made against another state: another
// lineage, or the same one at another serial.
func (p *Plan) CheckFresh(lineage string, serial uint64, exists bool) error {
	if !p.StateExisted {
		if exists {
			return fmt.Errorf("%w (there was no state when it was made; now there is one at serial %d)", ErrStale, serial)
		}
		return nil
	}
	if !exists {
		return fmt.Errorf("%w (the state it was made against is gone)", ErrStale)
	}
	if lineage != p.Lineage {
		//lint:ignore ST1005 a sentence users see first on the line, like ErrStale
		return fmt.Errorf("Saved plan is for another state: its lineage is %s, the state's is %s", p.Lineage, lineage)
	}
	if serial != p.Serial {
		return fmt.Errorf("%w (made at serial %d, the state is at serial %d)", ErrStale, p.Serial, serial)
	}
	return nil
}
