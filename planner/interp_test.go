package planner_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/sim"
	"github.com/dstackai/dstack-go/state"
)

// recordingSet hands out sim's providers, keeping the configuration each
// job was created from.
type recordingSet struct {
	sim.Set
	mu   sync.Mutex
	jobs map[string]json.RawMessage // by address, "task.t[1]"
}

func (s *recordingSet) For(backend string) (providers.Provider, error) {
	p, err := s.Set.For(backend)
	if err != nil {
		return nil, err
	}
	return recordingProvider{p, s}, nil
}

type recordingProvider struct {
	providers.Provider
	s *recordingSet
}

func (p recordingProvider) Create(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if req.Kind == providers.KindJob {
		p.s.mu.Lock()
		p.s.jobs[req.Address] = req.Spec
		p.s.mu.Unlock()
	}
	return p.Provider.Create(ctx, req)
}

// TestJobsGetTheirReferencesExpanded: a plan refuses a secret the state
// does not have, where it is written; the plan and the state keep the
// references; each job is made from its run's configuration expanded for
// it: the secret's value, and its own node rank.
func TestJobsGetTheirReferencesExpanded(t *testing.T) {
	w := newWorld(t, nil)
	rec := &recordingSet{Set: sim.Set{Cloud: w.cloud}, jobs: map[string]json.RawMessage{}}
	w.set = rec
	cfg := w.config(map[string]string{"main.dstack.yml": `type: task
name: t
nodes: 2
commands: [train]
env:
  - TOKEN=${{ secrets.hf_token }}
  - RANK=${{ dstack.node_rank }}/${{ dstack.nodes_num }}
`})
	_, err := w.plan(cfg, planOpts{})
	want := filepath.Join(w.dir, "config", "main.dstack.yml") + `:6:5: task.t: env.TOKEN: secret "hf_token" is not set`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("plan error %v, want one containing %q", err, want)
	}

	// The planner needs only the name to be stored; the value comes with
	// apply's options.
	st := state.New("test")
	st.Secrets = &state.Secrets{Cipher: "aes-256-gcm", KeyID: "k", Values: map[string]string{"hf_token": "c2VhbGVk"}}
	if _, err := w.backend.Write(context.Background(), state.DefaultWorkspace, st, "", ""); err != nil {
		t.Fatal(err)
	}
	p := w.mustPlan(cfg, planOpts{})
	planJSON, _ := json.Marshal(p)
	if strings.Contains(string(planJSON), "hf_SeCrEt") || !strings.Contains(string(planJSON), "${{ secrets.hf_token }}") {
		t.Fatal("the plan does not keep the reference as written")
	}
	res := w.apply(p, planner.ApplyOptions{Secrets: map[string]string{"hf_token": "hf_SeCrEt"}})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for addr, spec := range rec.jobs {
		var doc struct{ Env map[string]string }
		if err := json.Unmarshal(spec, &doc); err != nil {
			t.Fatal(err)
		}
		got = append(got, addr+" "+doc.Env["TOKEN"]+" "+doc.Env["RANK"])
	}
	slices.Sort(got)
	if want := []string{"task.t[0] hf_SeCrEt 0/2", "task.t[1] hf_SeCrEt 1/2"}; !slices.Equal(got, want) {
		t.Fatalf("jobs made from %q, want %q", got, want)
	}
	snap, err := w.backend.Read(context.Background(), state.DefaultWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := state.Encode(snap.State)
	if strings.Contains(string(data), "hf_SeCrEt") || !strings.Contains(string(data), "c2VhbGVk") {
		t.Fatal("the state holds the secret's value, or lost the sealed secrets")
	}
}
