package state

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// surgerySample: a fleet of two hosts, a task that needs it (and a
// fleet.m the state no longer has), and a
// service with a job abandoned at index 0 beside its live one.
func surgerySample() *State {
	s := New("test")
	s.Put(&Resource{Address: "fleet.a", Instances: []*Instance{{Index: 0, ProviderID: "h-0"}, {Index: 1, ProviderID: "h-1"}}})
	s.Put(&Resource{Address: "task.t", DependsOn: []string{"fleet.a", "fleet.m"}, Instances: []*Instance{{Index: 0, ProviderID: "j-0"}}})
	s.Put(&Resource{Address: "service.s", Instances: []*Instance{{Index: 0, ProviderID: "old"}, {Index: 0, ProviderID: "new"}}})
	return s
}

// layout is what surgery changes: each resource's address, dependencies
// and instances' provider IDs.
func layout(s *State) []string {
	var out []string
	for _, r := range s.Resources {
		line := r.Address
		if len(r.DependsOn) > 0 {
			line += " needs " + strings.Join(r.DependsOn, ",")
		}
		var ids []string
		for _, in := range r.Instances {
			ids = append(ids, in.ProviderID)
		}
		out = append(out, line+" ["+strings.Join(ids, ",")+"]")
	}
	return out
}

func TestForget(t *testing.T) {
	unchanged := layout(surgerySample())
	tests := []struct {
		name    string
		addrs   []string
		want    []string
		wantErr string
	}{
		{"a resource", []string{"task.t"}, []string{"fleet.a [h-0,h-1]", "service.s [old,new]"}, ""},
		{"one instance", []string{"fleet.a[1]"}, []string{"fleet.a [h-0]", "service.s [old,new]", "task.t needs fleet.a,fleet.m [j-0]"}, ""},
		{"two instances of one resource", []string{"fleet.a[0]", "fleet.a[1]"}, []string{"fleet.a []", "service.s [old,new]", "task.t needs fleet.a,fleet.m [j-0]"}, ""},
		{"a missing resource", []string{"task.nope"}, unchanged, "no resource task.nope in the state"},
		{"a missing instance", []string{"fleet.a[5]"}, unchanged, "fleet.a has no instance 5"},
		{"a bad index", []string{"fleet.a[x]"}, unchanged, "fleet.a[x]: the index must be a number, as in fleet.a[0]"},
		{"an unclosed index", []string{"fleet.a[0"}, unchanged, "the index must be a number"},
		{"a shared index", []string{"service.s[0]"}, unchanged, "service.s[0] names more than one instance (old and new)"},
		{"one bad address removes nothing", []string{"task.t", "task.nope"}, unchanged, "no resource task.nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := surgerySample()
			err := s.Forget(tt.addrs...)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, layout(s)); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMove(t *testing.T) {
	unchanged := layout(surgerySample())
	tests := []struct {
		name     string
		from, to string
		want     []string
		wantErr  string
	}{
		{"rename, and the dependency follows, sorted", "fleet.a", "fleet.z", []string{"fleet.z [h-0,h-1]", "service.s [old,new]", "task.t needs fleet.m,fleet.z [j-0]"}, ""},
		{"onto itself", "task.t", "task.t", unchanged, ""},
		{"a missing resource", "task.nope", "task.x", unchanged, "no resource task.nope in the state"},
		{"another kind", "task.t", "service.t", unchanged, "cannot move task.t to service.t: the kind differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := surgerySample()
			err := s.Move(tt.from, tt.to)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, layout(s)); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
	s := surgerySample()
	s.Put(&Resource{Address: "task.u"})
	if err := s.Move("task.t", "task.u"); err == nil || err.Error() != "task.u is already in the state" {
		t.Errorf("onto a taken address: %v", err)
	}
}
