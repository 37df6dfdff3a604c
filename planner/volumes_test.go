package planner_test

import (
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/planner"
)

const awsVolume = `type: volume
name: data
backend: aws
region: us-east-1
size: 100GB
`

const volumeTask = `type: task
name: train
commands: [python train.py]
volumes: [data:/data]
resources:
  gpu: 24GB:1
`

// jobSteps returns the steps that create the jobs of addr.
func jobSteps(p *planner.Plan, addr string) []*planner.Step {
	var out []*planner.Step
	for _, s := range p.Steps {
		if s.Address == addr && s.Op == planner.OpCreate {
			out = append(out, s)
		}
	}
	return out
}

// TestVolumeConstrainsOffers: a job mounting a network volume goes on a
// machine of the volume's backend and region, though a cheaper offer
// (runpod EU-RO-1's RTX4090) fits its resources elsewhere.
func TestVolumeConstrainsOffers(t *testing.T) {
	w := newWorld(t, nil)
	p := w.mustPlan(w.config(map[string]string{"vol.dstack.yml": awsVolume, "task.dstack.yml": volumeTask}), planOpts{})
	jobs := jobSteps(p, "task.train")
	if len(jobs) != 1 || jobs[0].Offer == nil {
		t.Fatalf("task.train's steps: %+v", jobs)
	}
	if o := jobs[0].Offer; o.Backend != "aws" || o.Region != "us-east-1" {
		t.Fatalf("task.train mounting an aws us-east-1 volume is placed on %s %s %s", o.Backend, o.Region, o.InstanceType)
	}
	for _, o := range jobs[0].Candidates {
		if o.Backend != "aws" || o.Region != "us-east-1" {
			t.Errorf("fail-over candidate %s %s %s cannot attach the volume", o.Backend, o.Region, o.InstanceType)
		}
	}
	// Without the volume the cheapest offer is elsewhere, so the test
	// tells placement with the constraint from placement without it.
	free := w.mustPlan(w.config(map[string]string{"task.dstack.yml": strings.Replace(volumeTask, "volumes: [data:/data]\n", "", 1)}), planOpts{})
	if o := jobSteps(free, "task.train")[0].Offer; o.Backend == "aws" && o.Region == "us-east-1" {
		t.Fatalf("the cheapest offer for the task is in aws us-east-1 already (%s); the test proves nothing", o.InstanceType)
	}
	// A mount whose alternatives include a volume known nowhere (another
	// project's) may go where that one is: no constraint.
	alt := w.mustPlan(w.config(map[string]string{"vol.dstack.yml": awsVolume,
		"task.dstack.yml": strings.Replace(volumeTask, "[data:/data]", "[{name: [data, team-b/cache], path: /data}]", 1)}), planOpts{})
	if o := jobSteps(alt, "task.train")[0].Offer; o.Backend == "aws" && o.Region == "us-east-1" {
		t.Fatalf("a mount with a volume of unknown place is held to its other volume's region (%s)", o.InstanceType)
	}
}

// TestVolumeConstrainsFleetHosts: a fleet instance in another backend is
// passed over for a job mounting the volume, with the reason given when
// the run may use only that fleet; a volume known only from the state
// (applied earlier from other files) constrains placement the same way.
func TestVolumeConstrainsFleetHosts(t *testing.T) {
	w := newWorld(t, nil)
	fleet := `type: fleet
name: pool
nodes: 1
backends: [runpod]
resources:
  gpu: 24GB:1
`
	w.converge(w.config(map[string]string{"vol.dstack.yml": awsVolume, "fleet.dstack.yml": fleet}))

	// The task alone, as `apply -f task.dstack.yml` plans it: the volume
	// and the fleet are in the state only.
	cfg := w.config(map[string]string{"task.dstack.yml": volumeTask})
	p := w.mustPlan(cfg, planOpts{targets: []string{"task.train"}})
	jobs := jobSteps(p, "task.train")
	if len(jobs) != 1 {
		t.Fatalf("task.train's steps: %+v", jobs)
	}
	if jobs[0].HostAddress != "" || jobs[0].Offer == nil || jobs[0].Offer.Backend != "aws" || jobs[0].Offer.Region != "us-east-1" {
		t.Fatalf("task.train is placed on host %q, offer %+v; want a new aws us-east-1 machine", jobs[0].HostAddress, jobs[0].Offer)
	}

	_, err := w.plan(w.config(map[string]string{"task.dstack.yml": strings.Replace(volumeTask, "volumes:", "fleets: [pool]\nvolumes:", 1)}),
		planOpts{targets: []string{"task.train"}})
	if err == nil || !strings.Contains(err.Error(), "fleet.pool[0]: it is in runpod EU-RO-1, and volume data is in aws us-east-1") {
		t.Fatalf("a run limited to a fleet in another region: %v", err)
	}
}
