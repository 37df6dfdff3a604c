package provider

import (
	"maps"
	"reflect"
	"testing"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// visible is what Terraform sees of a task whose one job has status.
func visible(status string) map[string]any {
	res := &state.Resource{Address: "task.t", Instances: []*state.Instance{{Index: 0, Provider: "local", ProviderID: "job-1",
		Status: status, Attributes: map[string]any{providers.AttrIP: "127.0.0.1", planner.AttrHostAddress: "fleet.f[0]"}}}}
	obj := map[string]any{"name": "t"}
	fillComputed(obj, res, res.Address, false)
	return obj
}

// TestKeepNormalFinish: a task's jobs that finished normally leave what
// Terraform sees as it was; any other change shows.
func TestKeepNormalFinish(t *testing.T) {
	for _, c := range []struct {
		was, now string
		kept     bool
	}{
		{providers.StatusRunning, providers.StatusDone, true},
		{providers.StatusProvisioning, providers.StatusDone, true},
		{providers.StatusRunning, providers.StatusRunning, true},
		{providers.StatusRunning, providers.StatusFailed, false},
		{providers.StatusRunning, providers.StatusStopped, false},
		{providers.StatusFailed, providers.StatusDone, false},
	} {
		prior, next := visible(c.was), visible(c.now)
		want := maps.Clone(next)
		if c.kept {
			want = prior
		}
		keepNormalFinish(next, prior)
		if !reflect.DeepEqual(next, want) {
			t.Errorf("%s -> %s: got %v, want %v", c.was, c.now, next, want)
		}
	}
	// Another job, or one job fewer, is a change.
	prior, next := visible(providers.StatusRunning), visible(providers.StatusDone)
	next[attrProvisioned] = append(next[attrProvisioned].([]any), next[attrProvisioned].([]any)[0])
	keepNormalFinish(next, prior)
	if next[attrStatus] != providers.StatusDone {
		t.Errorf("a job more was hidden: %v", next)
	}
}

// TestProvisionedHostNull: an object placed on no fleet instance has a
// null host (fillComputed serves the resources and the data source).
func TestProvisionedHostNull(t *testing.T) {
	res := &state.Resource{Address: "fleet.f", Instances: []*state.Instance{{Index: 0, Provider: "local", ProviderID: "local-vm-x",
		Status: providers.StatusRunning, Attributes: map[string]any{providers.AttrIP: "127.0.0.1"}}}}
	obj := map[string]any{}
	fillComputed(obj, res, res.Address, false)
	got := obj[attrProvisioned].([]any)[0].(map[string]any)
	if h, ok := got["host"]; !ok || h != nil {
		t.Errorf("host = %#v (present %v), want null", h, ok)
	}
	if h := visible(providers.StatusRunning)[attrProvisioned].([]any)[0].(map[string]any)["host"]; h != "fleet.f[0]" {
		t.Errorf("a job's host = %#v, want its fleet instance", h)
	}
}
