package aws_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
	"github.com/dstackai/dstack-go/providers/aws/ec2api"
	"github.com/dstackai/dstack-go/providers/ssh/sshtest"
)

// loopDevices skips the test where this machine cannot make loop
// devices (the fake's EBS volumes are loop devices over sparse files).
func loopDevices(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("losetup", "--find").CombinedOutput(); err != nil {
		t.Skipf("no loop devices here (losetup --find: %v: %s)", err, out)
	}
}

// TestVolumeMountedFromEBS: a run's EBS volume is mounted into its job at
// the run's path. The fake EC2 keeps the volume's data in a sparse file
// that AttachVolume turns into a loop device on the instance's host,
// linked where udev links an EBS volume on a Nitro instance; the
// provider finds that device, makes it ext4 (it has no filesystem yet),
// mounts it at /dstack-volumes/data on the host, and the job sees it at
// its path. The job runs as host processes (runtime: host): an sshtest
// host mounts in a mount namespace of its own, which this machine's
// dockerd, resolving a container's bind mounts, does not see; on an EC2
// instance the mount is the machine's and its containers see it.
// Detached and attached again to a job on another instance's
// place (the same host), the data is still there: no second mkfs.
func TestVolumeMountedFromEBS(t *testing.T) {
	loopDevices(t)
	e := newEnvOpts(t, 1, awstest.Options{DiskDir: t.TempDir()}, func(s aws.Settings) aws.Cloud { return sdkCloud(t, s) })
	vol, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindVolume, Token: "tok-data", Address: "volume.data",
		Spec: []byte(`{"type":"volume","name":"data","backend":"aws","region":"us-east-1","availability_zone":"us-east-1c","size":"1GB"}`)})
	if err != nil {
		t.Fatal(err)
	}
	inst := instanceReq("fleet.f[0]")
	inst.Token, inst.Offer.Zone = "tok-host", "us-east-1c"
	host, err := e.p.Create(ctxT(t), inst)
	if err != nil {
		t.Fatal(err)
	}
	h := e.hosts.Hosts[0]
	path := filepath.Join(t.TempDir(), "data")
	spec := func(cmd string) []byte {
		return fmt.Appendf(nil, `{"type":"task","name":"t","runtime":"host","commands":[%q],"volumes":[{"name":["data"],"path":%q}]}`, cmd, path)
	}
	job, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindJob, Token: "tok-j1", Address: "task.t[0]",
		Host: host.ID, Spec: spec("echo hello > " + path + "/greeting && exec sleep 6549")})
	if err != nil {
		t.Fatal(err)
	}
	waitHostFile(t, h, aws.VolumesDir+"/data/greeting", "hello")
	src, err := h.Exec(t, "findmnt -n -o SOURCE,FSTYPE "+aws.VolumesDir+"/data")
	if err != nil || !strings.HasPrefix(src, "/dev/loop") || !strings.Contains(src, "ext4") {
		t.Fatalf("the volume's mount on the host: %q, %v; want an ext4 loop device", src, err)
	}
	if job.Attributes[aws.AttrAttached] != vol.ID+":/dev/sdf" || job.Attributes[aws.AttrMounted] != "data" {
		t.Errorf("job attributes %v", job.Attributes)
	}

	if err := e.p.Delete(ctxT(t), providers.KindJob, job.ID); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec(t, "findmnt -n "+aws.VolumesDir+"/data || echo unmounted"); err != nil || strings.TrimSpace(out) != "unmounted" {
		t.Errorf("after the job the volume's mount point is %q (%v), want unmounted", out, err)
	}
	if vols := e.fake.Volumes(); len(vols) != 1 || vols[0].Instance != "" {
		t.Errorf("after the job: %+v, want the volume detached", vols)
	}

	// Attached again: the data written by the first job is there.
	job2, err := e.p.Create(ctxT(t), providers.CreateRequest{Kind: providers.KindJob, Token: "tok-j2", Address: "task.t[0]",
		Host: host.ID, Spec: spec("cp " + path + "/greeting " + path + "/seen && exec sleep 6549")})
	if err != nil {
		t.Fatal(err)
	}
	waitHostFile(t, h, aws.VolumesDir+"/data/seen", "hello")
	if err := e.p.Delete(ctxT(t), providers.KindJob, job2.ID); err != nil {
		t.Fatal(err)
	}
}

// sdkCloud is the SDK's Cloud on the settings.
func sdkCloud(t *testing.T, s aws.Settings) aws.Cloud {
	cloud, err := ec2api.New(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return cloud
}

// waitHostFile waits until the file on host h holds want.
func waitHostFile(t *testing.T, h *sshtest.Host, file, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := h.Exec(t, "cat "+file)
		if err == nil && strings.TrimSpace(out) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: %q (%v), want %q", file, h.Name, out, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
