package aws_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/providertest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestSpotInterruption: a spot instance EC2 takes back is described as
// terminated by a spot interruption, and a job on it as ended with it.
func TestSpotInterruption(t *testing.T) {
	e := newEnv(t, 1)
	req := instanceReq("fleet.f[0]")
	req.Offer.Spot = true
	req.Token = "tok-spot"
	inst, err := e.p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Running(); len(got) != 1 || got[0].Lifecycle != "spot" {
		t.Fatalf("launched %+v, want one spot instance", got)
	}
	job, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindJob, Token: "tok-job", Address: "task.t[0]",
		Host: inst.ID, Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["exec sleep 6547"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fake.Interrupt(inst.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.p.Describe(ctxT(t), []string{inst.Token, job.Token})
	if err != nil {
		t.Fatal(err)
	}
	if o := got[inst.Token]; o.Status != providers.StatusTerminated || o.Reason != "spot interruption" {
		t.Errorf("the instance is %s (%s), want terminated by a spot interruption", o.Status, o.Reason)
	}
	if o := got[job.Token]; o.Status != providers.StatusTerminated || !strings.Contains(o.Reason, "spot interruption") {
		t.Errorf("the job is %s (%s), want terminated with its instance", o.Status, o.Reason)
	}
}

// TestVolumes makes, describes and deletes an EBS volume through the
// provider, and registers an existing one by volume_id, which Delete
// forgets but keeps.
func TestVolumes(t *testing.T) {
	e := newEnv(t, 0)
	spec := []byte(`{"type":"volume","name":"data","backend":"aws","region":"us-west-2","availability_zone":"us-west-2b","size":"100GB"}`)
	v, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-vol", Address: "volume.data", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-vol", Address: "volume.data", Spec: spec})
	if err != nil || again.ID != v.ID {
		t.Fatalf("a second create: %v, %v; want %s", again.ID, err, v.ID)
	}
	vols := e.fake.Volumes()
	if len(vols) != 1 || vols[0].Zone != "us-west-2b" || vols[0].Size != 100 || vols[0].Tags[aws.TagToken] != "tok-vol" {
		t.Fatalf("volumes %+v", vols)
	}
	// A volume made outside this configuration, registered by its ID.
	ext, err := e.cloud.CreateVolume(ctxT(t), aws.VolumeRequest{Token: "made-elsewhere", Address: "elsewhere", Region: "us-west-2",
		Zone: "us-west-2a", SizeGB: 10})
	if err != nil {
		t.Fatal(err)
	}
	existing := []byte(strings.Replace(string(spec), `"size":"100GB"`, fmt.Sprintf(`"volume_id":%q`, ext.ID), 1))
	reg, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-reg", Address: "volume.old", Spec: existing})
	if err != nil || reg.ID != ext.ID {
		t.Fatalf("registering %s: %v, %v", ext.ID, reg.ID, err)
	}
	got, err := e.p.Describe(ctxT(t), []string{"tok-vol", "tok-reg", "tok-none"})
	if err != nil {
		t.Fatal(err)
	}
	if got["tok-vol"].ID != v.ID || got["tok-reg"].ID != ext.ID || got["tok-reg"].Attributes[aws.AttrZone] != "us-west-2a" || len(got) != 2 {
		t.Errorf("Describe: %+v", got)
	}
	for _, id := range []string{v.ID, ext.ID} {
		if err := e.p.Delete(ctxT(t), providers.KindVolume, id); err != nil {
			t.Fatal(err)
		}
	}
	if vols := e.fake.Volumes(); len(vols) != 1 || vols[0].ID != ext.ID {
		t.Errorf("volumes after Delete: %+v, want only the registered %s, kept", vols, ext.ID)
	}
	if err := e.cloud.DeleteVolume(ctxT(t), "us-west-2", ext.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-gone", Address: "volume.gone", Spec: existing})
	if providers.CodeOf(err) != providers.NotFound {
		t.Errorf("registering a volume that is gone: %v, want not-found", err)
	}
}

// TestSettingsHideCredentials: the settings print without their
// credentials, and unknown settings are refused.
func TestSettingsHideCredentials(t *testing.T) {
	s, err := aws.FromConfig(map[string]any{"type": "aws", "regions": []any{"us-east-1"},
		"creds": map[string]any{"type": "access_key", "access_key": "AKIAHIDDEN0000000001", "secret_key": "hidden-secret", "session_token": "hidden-token"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.AccessKey != "AKIAHIDDEN0000000001" || s.SecretKey != "hidden-secret" || len(s.Regions) != 1 {
		t.Fatalf("settings %+v", s.Regions)
	}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(out, "AKIAHIDDEN") || strings.Contains(out, "hidden-secret") || strings.Contains(out, "hidden-token") {
			t.Errorf("printed settings hold a credential: %s", out)
		}
	}
	if _, err := aws.FromConfig(map[string]any{"type": "aws", "vpc": "x"}); err == nil || !strings.Contains(err.Error(), `unknown setting "vpc"`) {
		t.Errorf("an unknown setting: %v", err)
	}
	if _, err := aws.FromConfig(map[string]any{"creds": map[string]any{"type": "magic"}}); err == nil {
		t.Error("an unknown creds type was accepted")
	}
}

// TestOwnMachineJob: a job of a run without a fleet gets an instance of
// its own (the lifecycle checks of the conformance suite: idempotent by
// token, described, deleted twice); a provider of a later process reaches
// it from what state recorded, and deleting the job terminates its
// instance.
func TestOwnMachineJob(t *testing.T) {
	e := newEnv(t, 2)
	jobReq := func(kind providers.ObjectKind, _ map[providers.ObjectKind]providers.Object) providers.CreateRequest {
		o := gpuOffer
		return providers.CreateRequest{Address: "task.t[0]", Offer: &o,
			Spec: []byte(`{"type":"task","name":"t","runtime":"host","commands":["echo own-machine; exec sleep 6548"],"tags":{"run":"t"}}`)}
	}
	providertest.CheckLifecycle(t, providertest.Harness{Provider: e.p, Kinds: []providers.ObjectKind{providers.KindJob}, Request: jobReq,
		Timeout: 2 * time.Minute})
	if r := e.fake.Running(); len(r) != 0 {
		t.Fatalf("instances run after the job's deletion: %+v", r)
	}

	req := jobReq(providers.KindJob, nil)
	req.Kind, req.Token = providers.KindJob, "tok-own"
	job, err := e.p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	r := e.fake.Running()
	if len(r) != 1 || r[0].Tags[aws.TagToken] != "tok-own" || r[0].Tags["run"] != "t" || job.Attributes[aws.AttrMachine] != r[0].ID || job.Host != "" {
		t.Fatalf("the job %+v on %+v", job, r)
	}
	// Another process: only what state recorded.
	q, err := aws.New(aws.Options{Cloud: e.cloud, KeyPath: e.keyPath, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Recall([]providers.Object{job})
	got, err := q.Describe(ctxT(t), []string{"tok-own"})
	if err != nil || got["tok-own"].Status != providers.StatusRunning {
		t.Fatalf("Describe in a later process: %+v, %v", got, err)
	}
	rc, err := q.Logs(ctxT(t), job.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	b := new(strings.Builder)
	_, _ = io.Copy(b, rc)
	rc.Close()
	if !strings.Contains(b.String(), "own-machine") {
		t.Errorf("the job's output: %q", b.String())
	}
	if err := q.Delete(ctxT(t), providers.KindJob, job.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.fake.Running(); len(r) != 0 {
		t.Errorf("the job's instance runs after its deletion: %+v", r)
	}
}

// TestVolumeAttach: a run that mounts an EBS volume gets its own machine
// in the volume's zone with the volume attached, detached when the job
// goes; a job on a fleet instance of another zone is refused as
// unsupported (the planner tries its next offer).
func TestVolumeAttach(t *testing.T) {
	loopDevices(t) // the job mounts the volume: it needs a block device
	e := newEnvOpts(t, 2, awstest.Options{DiskDir: t.TempDir()}, func(s aws.Settings) aws.Cloud { return sdkCloud(t, s) })
	vol, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-data", Address: "volume.data",
		Spec: []byte(`{"type":"volume","name":"data","backend":"aws","region":"us-east-1","availability_zone":"us-east-1c","size":"50GB"}`)})
	if err != nil {
		t.Fatal(err)
	}
	spec := []byte(`{"type":"task","name":"t","runtime":"host","commands":["exec sleep 6549"],"volumes":[{"name":["data"],"path":"/data"}]}`)
	o := gpuOffer
	job, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindJob, Token: "tok-vjob", Address: "task.t[0]", Offer: &o, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	r := e.fake.Running()
	if len(r) != 1 || r[0].Zone != "us-east-1c" {
		t.Fatalf("running %+v, want one instance in the volume's zone us-east-1c", r)
	}
	vols := e.fake.Volumes()
	if len(vols) != 1 || vols[0].Instance != r[0].ID || vols[0].Device != "/dev/sdf" || job.Attributes[aws.AttrAttached] != vol.ID+":/dev/sdf" {
		t.Fatalf("volumes %+v, job %v", vols, job.Attributes)
	}
	if err := e.p.Delete(ctxT(t), providers.KindJob, job.ID); err != nil {
		t.Fatal(err)
	}
	if vols := e.fake.Volumes(); len(vols) != 1 || vols[0].Instance != "" || vols[0].State != "available" {
		t.Errorf("after the job: %+v, want the volume detached", vols)
	}

	// A fleet instance in us-east-1a cannot take it.
	inst := instanceReq("fleet.f[0]")
	inst.Token, inst.Offer.Zone = "tok-host", "us-east-1a"
	host, err := e.p.Create(ctxT(t), inst)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindJob, Token: "tok-vjob2", Address: "task.t[0]", Host: host.ID, Spec: spec})
	if providers.CodeOf(err) != providers.Unsupported || !strings.Contains(err.Error(), "us-east-1c") {
		t.Errorf("a job on an instance of another zone: %v, want unsupported", err)
	}
}

// TestAgentDown: an instance whose agent died is described as unknown
// (no run is placed there, and it is not forgotten as a failed one would
// be, which would leave it running outside the state); making it again
// starts the agent again on the same instance.
func TestAgentDown(t *testing.T) {
	e := newEnv(t, 1)
	req := instanceReq("fleet.f[0]")
	req.Token = "tok-repair"
	inst, err := e.p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	h := e.hosts.Hosts[0]
	if _, err := h.Exec(t, `kill -9 "$(cat /root/.dstack/agent/supervisor.pid)" "$(cat /root/.dstack/agent/agent.pid)"`); err != nil {
		t.Fatal(err)
	}
	got, err := e.p.Describe(ctxT(t), []string{req.Token})
	if err != nil {
		t.Fatal(err)
	}
	if o := got[req.Token]; o.Status != providers.StatusUnknown || !strings.Contains(o.Reason, "agent") {
		t.Fatalf("with its agent killed the instance is %s (%s), want unknown", o.Status, o.Reason)
	}
	again, err := e.p.Create(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != inst.ID || len(e.fake.Instances()) != 1 {
		t.Errorf("the repair launched %s (%d instances), want the same %s", again.ID, len(e.fake.Instances()), inst.ID)
	}
	if got, err := e.p.Describe(ctxT(t), []string{req.Token}); err != nil || got[req.Token].Status != providers.StatusRunning {
		t.Errorf("after the repair: %+v, %v", got[req.Token], err)
	}
}

// TestClusterPlacement: a fleet with placement: cluster launches into
// its placement group, with EFA on a type that has it and without on one
// that has not.
func TestClusterPlacement(t *testing.T) {
	e := newEnv(t, 2)
	spec := []byte(`{"type":"fleet","name":"train","placement":"cluster","backends":["aws"]}`)
	for i, typ := range []string{"p4d.24xlarge", "m7i.4xlarge"} {
		o := gpuOffer
		o.InstanceType = typ
		_, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindInstance, Token: fmt.Sprintf("tok-pg%d", i),
			Address: fmt.Sprintf("fleet.train[%d]", i), Offer: &o, Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]awstest.Instance{}
	for _, i := range e.fake.Instances() {
		got[i.Type] = i
	}
	if p4 := got["p4d.24xlarge"]; p4.PlacementGroup != "dstack-train" || !p4.EFA {
		t.Errorf("p4d.24xlarge: placement group %q, EFA %v; want dstack-train with EFA", p4.PlacementGroup, p4.EFA)
	}
	if m7 := got["m7i.4xlarge"]; m7.PlacementGroup != "dstack-train" || m7.EFA {
		t.Errorf("m7i.4xlarge: placement group %q, EFA %v; want dstack-train without EFA", m7.PlacementGroup, m7.EFA)
	}
}
