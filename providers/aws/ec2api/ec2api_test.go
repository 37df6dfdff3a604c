package ec2api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/awstest"
)

// fakeCloud is the SDK pointed at the fake EC2 API (package awstest),
// through the SDK's own AWS_ENDPOINT_URL_EC2, with static credentials.
func fakeCloud(t *testing.T, s aws.Settings) (*Cloud, *awstest.Fake) {
	t.Helper()
	f := awstest.New(awstest.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_EC2", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	if s.Regions == nil {
		s.Regions = []string{"us-east-1", "us-west-2"}
	}
	c, err := New(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqGl7Yk2s8l7v0s0E3nY7pD7b8oU5o3d6Zb0qQvX3sZ test"

// TestFakeEC2Launch launches through the SDK against the fake EC2 API: the
// SDK's serializers and deserializers accept the fake's shapes, and
// RunInstances carries everything dstack asks for.
func TestFakeEC2Launch(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{Tags: map[string]string{"team": "ml"}})
	req := aws.LaunchRequest{Token: "tok-1", Address: "fleet.gpus[0]", Region: "us-west-2", Zone: "us-west-2b",
		InstanceType: "p4d.24xlarge", GPUVendor: "nvidia", Arch: "x86", Spot: true, MaxPrice: 12.5, DiskGB: 200,
		AuthorizedKey: testKey, Tags: map[string]string{"owner": "alice"}, PlacementGroup: "dstack-gpus", EFA: true}
	inst, err := c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != inst.ID {
		t.Errorf("a second launch with the token made %s, the first %s", again.ID, inst.ID)
	}
	all := f.Instances()
	if len(all) != 1 {
		t.Fatalf("the fake holds %d instances, want 1", len(all))
	}
	got := all[0]
	if got.Region != "us-west-2" || got.Zone != "us-west-2b" || got.Type != "p4d.24xlarge" || got.Lifecycle != "spot" ||
		got.SpotMaxPrice != "12.5000" || got.RootSize != 200 || got.PlacementGroup != "dstack-gpus" || !got.EFA ||
		!strings.HasPrefix(got.ClientToken, "tok-1-") {
		t.Errorf("launched %+v", got)
	}
	for k, v := range map[string]string{aws.TagToken: "tok-1", aws.TagAddress: "fleet.gpus[0]", "team": "ml", "owner": "alice"} {
		if got.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, got.Tags[k], v)
		}
	}
	if !strings.Contains(string(awstest.AuthorizedKeys(got.UserData)), testKey) {
		t.Errorf("user-data %q does not deliver the key", got.UserData)
	}
	var sg *awstest.SecurityGroup
	for _, g := range f.SecurityGroups("us-west-2") {
		if g.Name == SecurityGroupName {
			sg = &g
		}
	}
	if sg == nil || len(sg.Ingress) != 1 || sg.Ingress[0] != "tcp:22-22:0.0.0.0/0" || len(got.SecurityGroups) != 1 || got.SecurityGroups[0] != sg.ID {
		t.Errorf("security group %+v, instance's %v: want one opening only SSH", sg, got.SecurityGroups)
	}
	found, err := c.Instances(ctx(t), []string{"tok-1", "tok-none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != inst.ID || found[0].Token != "tok-1" || found[0].Address != "fleet.gpus[0]" || !found[0].Spot {
		t.Errorf("Instances found %+v", found)
	}
	if err := c.Terminate(ctx(t), "us-west-2", inst.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Running()); n != 0 {
		t.Errorf("%d instances still run after Terminate", n)
	}
	if err := c.Terminate(ctx(t), "us-west-2", "i-0000000000000dead"); err != nil {
		t.Errorf("terminating an instance that is gone: %v", err)
	}
}

// TestFakeEC2Errors maps EC2's error codes, as the fake answers them
// with their documented statuses, to the contract's.
func TestFakeEC2Errors(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{})
	for code, want := range map[string]providers.Code{
		"InsufficientInstanceCapacity": providers.NoCapacity,
		"SpotMaxPriceTooLow":           providers.NoCapacity,
		"InstanceLimitExceeded":        providers.Quota,
		"VcpuLimitExceeded":            providers.Quota,
		"RequestLimitExceeded":         providers.RateLimited,
		"AuthFailure":                  providers.Auth,
		"UnauthorizedOperation":        providers.Auth,
		"Unsupported":                  providers.Unsupported,
	} {
		f.Inject("RunInstances", code, 1)
		start := time.Now()
		_, err := c.Launch(ctx(t), aws.LaunchRequest{Token: "t-" + code, Address: "fleet.f[0]", Region: "us-east-1",
			InstanceType: "g5.xlarge", GPUVendor: "nvidia", AuthorizedKey: testKey})
		if got := providers.CodeOf(err); got != want {
			t.Errorf("%s: code %q (%v), want %q", code, got, err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: answered after %s: the SDK retried a launch", code, d)
		}
		if strings.HasSuffix(code, "LimitExceeded") && code != "RequestLimitExceeded" && providers.ScopeOf(err) != providers.ScopeRegion {
			t.Errorf("%s: scope %q, want region", code, providers.ScopeOf(err))
		}
		if want == providers.RateLimited && providers.RetryAfter(err) <= 0 {
			t.Errorf("%s: no retry-after", code)
		}
	}
	if n := len(f.Running()); n != 0 {
		t.Errorf("%d instances run after failed launches", n)
	}
}

// TestFakeEC2Volumes creates, attaches, detaches and deletes an EBS
// volume, and finds it by token and by ID.
func TestFakeEC2Volumes(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{})
	inst, err := c.Launch(ctx(t), aws.LaunchRequest{Token: "ti", Address: "fleet.f[0]", Region: "us-east-1", Zone: "us-east-1c",
		InstanceType: "m5.large", AuthorizedKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.CreateVolume(ctx(t), aws.VolumeRequest{Token: "tv", Address: "volume.data", Region: "us-east-1", Zone: "us-east-1c", SizeGB: 100})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.CreateVolume(ctx(t), aws.VolumeRequest{Token: "tv", Address: "volume.data", Region: "us-east-1", Zone: "us-east-1c", SizeGB: 100})
	if err != nil || v2.ID != v.ID {
		t.Fatalf("second create: %v, %v; want %s", v2, err, v.ID)
	}
	if err := c.AttachVolume(ctx(t), "us-east-1", v.ID, inst.ID, "/dev/sdf"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Volumes(ctx(t), []string{"tv"}, []aws.VolumeRef{{Region: "us-east-1", ID: v.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Instance != inst.ID || got[0].Device != "/dev/sdf" || got[0].State != "in-use" || got[1].ID != v.ID {
		t.Errorf("volumes %+v", got)
	}
	if err := c.DeleteVolume(ctx(t), "us-east-1", v.ID); providers.CodeOf(err) == "" && err == nil {
		t.Errorf("deleting an attached volume succeeded")
	}
	if err := c.DetachVolume(ctx(t), "us-east-1", v.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx(t), "us-east-1", v.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx(t), "us-east-1", v.ID); err != nil {
		t.Errorf("deleting a deleted volume: %v", err)
	}
	if n := len(f.Volumes()); n != 0 {
		t.Errorf("%d volumes left", n)
	}
}

// TestFakeEC2Network: vpc_name picks the VPC by its Name tag, public_ips
// false launches into a subnet that maps no public IP and asks for none,
// os_images overrides the AMI, and default_vpcs false without a named
// VPC is refused.
func TestFakeEC2Network(t *testing.T) {
	off := false
	c, f := fakeCloud(t, aws.Settings{VPCName: "ml", PublicIPs: &off,
		OSImages: map[string]aws.OSImage{"cpu": {Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-*", Owner: "099720109477"}}})
	vpc := f.AddVPC("us-east-1", "ml", false)
	f.AddVPC("us-east-1", "other", true)
	inst, err := c.Launch(ctx(t), aws.LaunchRequest{Token: "t-net", Address: "fleet.f[0]", Region: "us-east-1", Zone: "us-east-1b",
		InstanceType: "m7i.xlarge", AuthorizedKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	var got awstest.Instance
	for deadline := time.Now().Add(5 * time.Second); got.State != "running" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, i := range f.Instances() {
			if i.ID == inst.ID {
				got = i
			}
		}
	}
	if got.State != "running" || got.Zone != "us-east-1b" || got.PublicIP != "" {
		t.Errorf("launched %s in %s with public IP %q, want running in us-east-1b without one", got.State, got.Zone, got.PublicIP)
	}
	var sgVPC string
	for _, g := range f.SecurityGroups("us-east-1") {
		if len(got.SecurityGroups) == 1 && g.ID == got.SecurityGroups[0] {
			sgVPC = g.VpcID
		}
	}
	if sgVPC != vpc {
		t.Errorf("the instance's security group is in VPC %q, want the one named ml (%s)", sgVPC, vpc)
	}
	no := false
	c2, _ := fakeCloud(t, aws.Settings{DefaultVPCs: &no})
	_, err = c2.Launch(ctx(t), aws.LaunchRequest{Token: "t-novpc", Address: "fleet.f[0]", Region: "us-east-1",
		InstanceType: "m7i.xlarge", AuthorizedKey: testKey})
	if providers.CodeOf(err) != providers.Unsupported || !strings.Contains(err.Error(), "default_vpcs is false") {
		t.Errorf("default_vpcs false without a VPC: %v", err)
	}
}

// TestFakeEC2LaunchOtherOffer: a token launched on one offer and
// launched again on another (the failover after an instance that ended
// while booting) makes a second instance; on the same offer it is the
// same launch.
func TestFakeEC2LaunchOtherOffer(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{})
	req := aws.LaunchRequest{Token: "tok-fo", Address: "fleet.f[0]", Region: "us-east-1", InstanceType: "g6.xlarge",
		GPUVendor: "nvidia", Spot: true, AuthorizedKey: testKey}
	first, err := c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Interrupt(first.ID); err != nil {
		t.Fatal(err)
	}
	req.InstanceType = "g5.xlarge"
	second, err := c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID || second.InstanceType != "g5.xlarge" {
		t.Fatalf("the launch on the next offer returned %s (%s), the first was %s", second.ID, second.InstanceType, first.ID)
	}
	if again, err := c.Launch(ctx(t), req); err != nil || again.ID != second.ID {
		t.Fatalf("the same launch again: %v, %v; want %s", again.ID, err, second.ID)
	}
}

// TestFakeEC2Reservation: a launch into a capacity reservation goes to
// its zone; into a capacity block, with the capacity-block market; an
// offer of another type is unsupported, and a full reservation a quota.
func TestFakeEC2Reservation(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{})
	cr := f.AddCapacityReservation("us-east-1", "us-east-1c", "p5.48xlarge", 1, false)
	cb := f.AddCapacityReservation("us-east-1", "us-east-1b", "p5.48xlarge", 1, true)
	req := aws.LaunchRequest{Token: "t-cr", Address: "fleet.f[0]", Region: "us-east-1", InstanceType: "p5.48xlarge",
		GPUVendor: "nvidia", AuthorizedKey: testKey, Reservation: cr}
	inst, err := c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Zone != "us-east-1c" {
		t.Errorf("launched in %s, want the reservation's us-east-1c", inst.Zone)
	}
	req.Token, req.Reservation = "t-cb", cb
	inst, err = c.Launch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	var market string
	for _, call := range f.Calls() {
		if call.Action == "RunInstances" && call.Error == "" && call.Params.Get("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId") == cb {
			market = call.Params.Get("InstanceMarketOptions.MarketType")
		}
	}
	if inst.Zone != "us-east-1b" || market != "capacity-block" {
		t.Errorf("the capacity block's launch: zone %s, market %q", inst.Zone, market)
	}
	req.Token, req.InstanceType = "t-other", "p4d.24xlarge"
	if _, err := c.Launch(ctx(t), req); providers.CodeOf(err) != providers.Unsupported {
		t.Errorf("another type into the block: %v, want unsupported", err)
	}
	req.Token, req.InstanceType, req.Reservation = "t-full", "p5.48xlarge", cr
	if _, err := c.Launch(ctx(t), req); providers.CodeOf(err) != providers.Quota {
		t.Errorf("a full reservation: %v, want quota", err)
	}
}

// TestFakeEC2DescribeBatches: Instances asks for tokens in batches of
// 200 filter values per region, and finds instances in every batch.
func TestFakeEC2DescribeBatches(t *testing.T) {
	c, f := fakeCloud(t, aws.Settings{Regions: []string{"us-east-1"}})
	var tokens []string
	for i := range 450 {
		tokens = append(tokens, fmt.Sprintf("tok-%03d", i))
	}
	for _, tok := range []string{"tok-000", "tok-250", "tok-449"} {
		if _, err := c.Launch(ctx(t), aws.LaunchRequest{Token: tok, Address: "fleet.f[0]", Region: "us-east-1",
			InstanceType: "m7i.large", AuthorizedKey: testKey}); err != nil {
			t.Fatal(err)
		}
	}
	before := len(f.Calls())
	found, err := c.Instances(ctx(t), tokens)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 3 {
		t.Errorf("found %d instances, want 3", len(found))
	}
	var calls []int
	for _, call := range f.Calls()[before:] {
		if call.Action == "DescribeInstances" {
			n := 0
			for k := range call.Params {
				if strings.HasPrefix(k, "Filter.1.Value.") {
					n++
				}
			}
			calls = append(calls, n)
		}
	}
	if len(calls) != 3 || calls[0] != 200 || calls[1] != 200 || calls[2] != 50 {
		t.Errorf("DescribeInstances calls with %v filter values, want 200, 200, 50", calls)
	}
}
