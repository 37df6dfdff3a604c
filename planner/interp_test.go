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
	// A name one typo away from a stored one gets a suggestion.
	typo := w.config(map[string]string{"main.dstack.yml": "type: task\nname: t\ncommands: [x]\nenv:\n  - T=${{ secrets.hf_tokne }}\n"})
	if _, err := w.plan(typo, planOpts{}); err == nil || !strings.Contains(err.Error(), `secret "hf_tokne" is not set; did you mean "hf_token"?`) {
		t.Fatalf("plan error %v, want a suggestion of hf_token", err)
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

// TestPerJobVolumesPlaceEachJob: a distributed task mounting
// data-${{ dstack.node_rank }} places each job where its own volume is:
// job 0 beside data-0 in us-east-1, job 1 beside data-1 in eu-west-1.
func TestPerJobVolumesPlaceEachJob(t *testing.T) {
	w := newWorld(t, nil)
	vol := func(name, region string) string {
		return "type: volume\nname: " + name + "\nbackend: aws\nregion: " + region + "\nsize: 100GB\n"
	}
	p := w.mustPlan(w.config(map[string]string{
		"v0.dstack.yml": vol("data-0", "us-east-1"),
		"v1.dstack.yml": vol("data-1", "eu-west-1"),
		"task.dstack.yml": `type: task
name: train
nodes: 2
commands: [python train.py]
volumes:
  - name: data-${{ dstack.node_rank }}
    path: /data
resources:
  gpu: 24GB:1
`}), planOpts{})
	jobs := jobSteps(p, "task.train")
	if len(jobs) != 2 {
		t.Fatalf("task.train's steps: %+v", jobs)
	}
	want := map[int]string{0: "aws us-east-1", 1: "aws eu-west-1"}
	for _, j := range jobs {
		if j.Offer == nil || j.Offer.Backend+" "+j.Offer.Region != want[j.Index] {
			t.Errorf("job %d placed on %+v, want %s beside its volume", j.Index, j.Offer, want[j.Index])
		}
	}
	var c *planner.Change
	for _, ch := range p.Changes {
		if ch.Address == "task.train" {
			c = ch
		}
	}
	if c == nil || !slices.Contains(c.DependsOn, "volume.data-0") || !slices.Contains(c.DependsOn, "volume.data-1") {
		t.Fatalf("task.train depends on %v, want both volumes", c.DependsOn)
	}
}
