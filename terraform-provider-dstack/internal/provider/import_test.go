package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/state"
	statelocal "github.com/dstackai/dstack-go/state/local"
)

// TestMoveFromCLI: a record moved out of the CLI's state is handed to
// keep and then gone from that state; one that other CLI records depend
// on, or one keep refuses, stays where it was.
func TestMoveFromCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := statelocal.New(map[string]string{"path": dir})
	if err != nil {
		t.Fatal(err)
	}
	st := state.New("test")
	st.Put(&state.Resource{Address: "fleet.used", Instances: []*state.Instance{{ProviderID: "local-vm-1"}}})
	st.Put(&state.Resource{Address: "fleet.free", Instances: []*state.Instance{{ProviderID: "local-vm-2"}}})
	st.Put(&state.Resource{Address: "task.job", DependsOn: []string{"fleet.used"}})
	if _, err := b.Write(ctx, state.DefaultWorkspace, st, "", ""); err != nil {
		t.Fatal(err)
	}
	s := &settings{stateBackend: "local", stateConfig: map[string]string{"path": dir}, workspace: state.DefaultWorkspace}
	addrs := func() string {
		snap, err := b.Read(ctx, state.DefaultWorkspace)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range snap.State.Resources {
			out = append(out, r.Address)
		}
		return strings.Join(out, " ")
	}

	kept := map[string]*state.Resource{}
	keep := func(r *state.Resource) error { kept[r.Address] = r; return nil }
	err = s.moveFromCLI(ctx, "fleet.used", "test", keep)
	if err == nil || !strings.Contains(err.Error(), "task.job") {
		t.Errorf("moving a fleet a task depends on: %v, want a refusal naming task.job", err)
	}
	err = s.moveFromCLI(ctx, "fleet.free", "test", func(*state.Resource) error { return context.Canceled })
	if err == nil || !strings.Contains(addrs(), "fleet.free") {
		t.Errorf("a refused keep: %v, state %s, want the record left", err, addrs())
	}
	if err := s.moveFromCLI(ctx, "fleet.free", "test", keep); err != nil {
		t.Fatal(err)
	}
	if got := kept["fleet.free"]; got == nil || got.Instances[0].ProviderID != "local-vm-2" {
		t.Errorf("keep got %+v", kept)
	}
	if got := addrs(); strings.Contains(got, "fleet.free") || !strings.Contains(got, "fleet.used") {
		t.Errorf("the CLI's state after the move: %s", got)
	}
	if err := s.moveFromCLI(ctx, "fleet.free", "test", keep); err == nil || !strings.Contains(err.Error(), "has no fleet.free") {
		t.Errorf("moving it again: %v", err)
	}
}
