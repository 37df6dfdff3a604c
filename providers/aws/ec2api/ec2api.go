// Package ec2api is the aws backend's EC2 side: [aws.Cloud] on the AWS
// SDK (github.com/aws/aws-sdk-go-v2/service/ec2). It is linked into
// dstack-provider-aws only (see cmd/dstack-provider-aws), never into
// dstack itself: the SDK's EC2 client is large, and its initialisation
// would be paid by every dstack command.
//
// Credentials come from the settings (access_key/secret_key, profile)
// or the SDK's default chain (environment, shared config and
// credentials files, SSO, the instance's role). The endpoint is the
// SDK's, so AWS_ENDPOINT_URL_EC2 points it elsewhere (the fake of
// package awstest).
package ec2api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/smithy-go"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/aws"
)

// SecurityGroupName is the security group dstack makes in each VPC: SSH
// in, nothing else.
const SecurityGroupName = "dstack"

// Cloud is EC2 through the SDK.
type Cloud struct {
	settings aws.Settings
	cfg      awssdk.Config

	mu      sync.Mutex
	clients map[string]*ec2.Client
	pricing *pricing.Client        // the Price List API's (see offers.go)
	images  map[string]image       // region/vendor/arch → AMI
	subnets map[string][]subnetRef // region/zone → subnets to launch into
	groups  map[string]string      // region/vpc → security group ID
	pgroups map[string]bool        // region/name → placement group made
}

type image struct{ id, rootDevice string }

type subnetRef struct{ id, vpc, zone string }

var _ aws.Cloud = (*Cloud)(nil)

// New returns the cloud of settings. It reads credentials lazily: a
// missing one is an Auth error on the first call.
func New(ctx context.Context, s aws.Settings) (*Cloud, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(cmp.Or(first(s.Regions), "us-east-1"))}
	if s.AccessKey != "" || s.SecretKey != "" {
		if s.AccessKey == "" || s.SecretKey == "" {
			return nil, providers.Errorf(providers.Auth, "the aws backend's credentials need both access_key and secret_key")
		}
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, s.SessionToken)))
	}
	if s.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, providers.Errorf(providers.Auth, "loading the AWS configuration: %v", err)
	}
	return &Cloud{settings: s, cfg: cfg, clients: map[string]*ec2.Client{}, images: map[string]image{},
		subnets: map[string][]subnetRef{}, groups: map[string]string{}, pgroups: map[string]bool{}}, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// client returns the EC2 client of a region.
func (c *Cloud) client(region string) *ec2.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[region]; cl != nil {
		return cl
	}
	cl := ec2.NewFromConfig(c.cfg, func(o *ec2.Options) {
		o.Region = region
		if c.settings.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(c.settings.Endpoint)
		}
	})
	c.clients[region] = cl
	return cl
}

// noRetry launches once: a capacity error is the planner's to act on
// (the next offer), at once, not after the SDK's back-off.
func noRetry(o *ec2.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }

// regions are the regions to look in: the settings', else the catalog's.
func (c *Cloud) regions() []string {
	if len(c.settings.Regions) > 0 {
		return c.settings.Regions
	}
	return aws.CatalogRegions()
}

// Launch implements aws.Cloud.
func (c *Cloud) Launch(ctx context.Context, req aws.LaunchRequest) (aws.Instance, error) {
	cl := c.client(req.Region)
	block := false
	if req.Reservation != "" {
		zone, isBlock, err := c.reservation(ctx, req)
		if err != nil {
			return aws.Instance{}, err
		}
		req.Zone, block = zone, isBlock
	}
	im, err := c.image(ctx, req.Region, req.GPUVendor, req.Arch)
	if err != nil {
		return aws.Instance{}, err
	}
	sn, err := c.subnet(ctx, req.Region, req.Zone)
	if err != nil {
		return aws.Instance{}, err
	}
	sg, err := c.securityGroup(ctx, req.Region, sn.vpc)
	if err != nil {
		return aws.Instance{}, err
	}
	tags := c.tags(req.Token, req.Address, req.Tags)
	ni := types.InstanceNetworkInterfaceSpecification{DeviceIndex: awssdk.Int32(0), SubnetId: awssdk.String(sn.id),
		Groups: []string{sg}, AssociatePublicIpAddress: awssdk.Bool(c.settings.PublicIPs == nil || *c.settings.PublicIPs),
		DeleteOnTermination: awssdk.Bool(true)}
	in := &ec2.RunInstancesInput{
		ClientToken:  awssdk.String(clientToken(req.Token, req.Region, req.Zone, req.InstanceType, strconv.FormatBool(req.Spot))),
		ImageId:      awssdk.String(im.id),
		InstanceType: types.InstanceType(req.InstanceType),
		MinCount:     awssdk.Int32(1), MaxCount: awssdk.Int32(1),
		UserData:          awssdk.String(base64.StdEncoding.EncodeToString([]byte(UserData(req.AuthorizedKey)))),
		NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{ni},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled},
	}
	if req.Zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: awssdk.String(req.Zone)}
	}
	if req.DiskGB > 0 {
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: awssdk.String(im.rootDevice),
			Ebs: &types.EbsBlockDevice{VolumeSize: awssdk.Int32(int32(req.DiskGB)), VolumeType: types.VolumeTypeGp3,
				DeleteOnTermination: awssdk.Bool(true)}}}
	}
	if req.Spot {
		so := &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
			InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}
		if req.MaxPrice > 0 {
			so.MaxPrice = awssdk.String(strconv.FormatFloat(req.MaxPrice, 'f', 4, 64))
		}
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: so}
	}
	if req.PlacementGroup != "" {
		if err := c.placementGroup(ctx, req.Region, req.PlacementGroup); err != nil {
			return aws.Instance{}, err
		}
		if in.Placement == nil {
			in.Placement = &types.Placement{}
		}
		in.Placement.GroupName = awssdk.String(req.PlacementGroup)
	}
	if req.EFA {
		in.NetworkInterfaces[0].InterfaceType = awssdk.String("efa")
	}
	if req.Reservation != "" {
		in.CapacityReservationSpecification = &types.CapacityReservationSpecification{
			CapacityReservationTarget: &types.CapacityReservationTarget{CapacityReservationId: awssdk.String(req.Reservation)}}
		if block {
			in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeCapacityBlock}
		}
	}
	out, err := cl.RunInstances(ctx, in, noRetry)
	if err != nil {
		return aws.Instance{}, classify(fmt.Sprintf("launching a %s in %s", req.InstanceType, cmp.Or(req.Zone, req.Region)), err)
	}
	if len(out.Instances) != 1 {
		return aws.Instance{}, fmt.Errorf("launching a %s in %s: EC2 returned %d instances", req.InstanceType, req.Region, len(out.Instances))
	}
	return instanceOf(req.Region, out.Instances[0]), nil
}

// reservation checks that the capacity reservation or capacity block req
// names is for its offer, and returns its zone and whether it is a
// block (launched with the capacity-block market). An offer it is not
// for is unsupported (the planner tries the next).
func (c *Cloud) reservation(ctx context.Context, req aws.LaunchRequest) (zone string, block bool, err error) {
	out, err := c.client(req.Region).DescribeCapacityReservations(ctx, &ec2.DescribeCapacityReservationsInput{
		CapacityReservationIds: []string{req.Reservation}})
	if apiCode(err) == "InvalidCapacityReservationId.NotFound" || err == nil && len(out.CapacityReservations) != 1 {
		return "", false, providers.Errorf(providers.Unsupported, "reservation %s is not in %s", req.Reservation, req.Region)
	}
	if err != nil {
		return "", false, classify("finding reservation "+req.Reservation, err)
	}
	cr := out.CapacityReservations[0]
	zone = awssdk.ToString(cr.AvailabilityZone)
	switch {
	case req.Spot:
		return "", false, providers.Errorf(providers.Unsupported, "reservation %s is for on-demand instances, not spot", req.Reservation)
	case awssdk.ToString(cr.InstanceType) != req.InstanceType:
		return "", false, providers.Errorf(providers.Unsupported, "reservation %s is for %s, not %s", req.Reservation, awssdk.ToString(cr.InstanceType), req.InstanceType)
	case req.Zone != "" && zone != req.Zone:
		return "", false, providers.Errorf(providers.Unsupported, "reservation %s is in %s, not %s", req.Reservation, zone, req.Zone)
	}
	return zone, cr.ReservationType == types.CapacityReservationTypeCapacityBlock, nil
}

// clientToken is EC2's idempotency token (at most 64 ASCII characters)
// of a launch: dstack's token and the offer. A launch of one token on
// another offer (a failover after an instance that ended while booting)
// is another launch, which EC2 would otherwise answer with the first.
func clientToken(tok string, offer ...string) string {
	if len(offer) == 0 {
		return tok[:min(len(tok), 64)]
	}
	sum := sha256.Sum256([]byte(strings.Join(offer, "/")))
	return tok[:min(len(tok), 55)] + "-" + hex.EncodeToString(sum[:4])
}

// UserData is the cloud-init document that gives the instance its SSH
// key: root logs in with it (disable_root: false), as dstack's agent
// runs as root.
func UserData(authorizedKey string) string {
	return "#cloud-config\n" +
		"disable_root: false\n" +
		"ssh_pwauth: false\n" +
		"ssh_authorized_keys:\n" +
		"  - " + strings.TrimSpace(authorizedKey) + "\n"
}

func (c *Cloud) tags(token, address string, extra map[string]string) []types.Tag {
	m := map[string]string{}
	for k, v := range c.settings.Tags {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	m[aws.TagToken], m[aws.TagAddress] = token, address
	if _, ok := m[aws.TagName]; !ok {
		m[aws.TagName] = "dstack " + address
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(m))
	for _, k := range keys {
		out = append(out, types.Tag{Key: awssdk.String(k), Value: awssdk.String(m[k])})
	}
	return out
}

// defaultImages are the AMIs per GPU vendor and architecture: AWS's Deep
// Learning AMIs (their drivers, CUDA and container toolkit installed),
// Ubuntu for machines without accelerators.
var defaultImages = map[string]aws.OSImage{
	"nvidia/x86": {Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *", Owner: "amazon"},
	"nvidia/arm": {Name: "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *", Owner: "amazon"},
	"aws/x86":    {Name: "Deep Learning AMI Neuron (Ubuntu 22.04) *", Owner: "amazon"},
	"cpu/x86":    {Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*", Owner: "099720109477"},
	"cpu/arm":    {Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*", Owner: "099720109477"},
}

// image finds the newest AMI for a GPU vendor and architecture.
func (c *Cloud) image(ctx context.Context, region, vendor, arch string) (image, error) {
	vendor, arch = cmp.Or(vendor, "cpu"), cmp.Or(arch, "x86")
	key := region + "/" + vendor + "/" + arch
	c.mu.Lock()
	im, ok := c.images[key]
	c.mu.Unlock()
	if ok {
		return im, nil
	}
	want, ok := c.settings.OSImages[vendor]
	if !ok {
		if want, ok = defaultImages[vendor+"/"+arch]; !ok {
			want, ok = defaultImages["cpu/"+arch]
		}
		if !ok {
			return image{}, providers.Errorf(providers.Unsupported, "no AMI for %s machines of architecture %s: name one in os_images", vendor, arch)
		}
	}
	ec2Arch := map[string]string{"x86": "x86_64", "arm": "arm64"}[arch]
	in := &ec2.DescribeImagesInput{Filters: []types.Filter{
		{Name: awssdk.String("name"), Values: []string{want.Name}},
		{Name: awssdk.String("state"), Values: []string{"available"}},
		{Name: awssdk.String("architecture"), Values: []string{ec2Arch}},
	}}
	if want.Owner != "" {
		in.Owners = []string{want.Owner}
	}
	out, err := c.client(region).DescribeImages(ctx, in)
	if err != nil {
		return image{}, classify("finding the AMI "+want.Name+" in "+region, err)
	}
	if len(out.Images) == 0 {
		return image{}, providers.Errorf(providers.Unsupported, "no AMI named %q (owner %s, %s) in %s", want.Name, cmp.Or(want.Owner, "any"), ec2Arch, region)
	}
	best := slices.MaxFunc(out.Images, func(a, b types.Image) int {
		return cmp.Compare(awssdk.ToString(a.CreationDate), awssdk.ToString(b.CreationDate))
	})
	im = image{id: awssdk.ToString(best.ImageId), rootDevice: cmp.Or(awssdk.ToString(best.RootDeviceName), "/dev/sda1")}
	c.mu.Lock()
	c.images[key] = im
	c.mu.Unlock()
	return im, nil
}

// vpc finds the VPC to launch into in a region.
func (c *Cloud) vpc(ctx context.Context, region string) (string, error) {
	if id := c.settings.VPCIDs[region]; id != "" {
		return id, nil
	}
	cl := c.client(region)
	var in ec2.DescribeVpcsInput
	switch {
	case c.settings.VPCName != "":
		in.Filters = []types.Filter{{Name: awssdk.String("tag:Name"), Values: []string{c.settings.VPCName}}}
	case len(c.settings.VPCIDs) > 0:
		return "", providers.Errorf(providers.Unsupported, "vpc_ids names no VPC for region %s", region)
	case c.settings.DefaultVPCs != nil && !*c.settings.DefaultVPCs:
		return "", providers.Errorf(providers.Unsupported, "default_vpcs is false and neither vpc_name nor vpc_ids names a VPC in %s", region)
	default:
		in.Filters = []types.Filter{{Name: awssdk.String("is-default"), Values: []string{"true"}}}
	}
	out, err := cl.DescribeVpcs(ctx, &in)
	if err != nil {
		return "", classify("finding the VPC in "+region, err)
	}
	if len(out.Vpcs) == 0 {
		what := "a default VPC"
		if c.settings.VPCName != "" {
			what = fmt.Sprintf("a VPC named %q", c.settings.VPCName)
		}
		return "", providers.Errorf(providers.Unsupported, "%s has no %s", region, what)
	}
	return awssdk.ToString(out.Vpcs[0].VpcId), nil
}

// subnet picks the subnet to launch into: in zone when given, mapping
// public IPs when public_ips is on.
func (c *Cloud) subnet(ctx context.Context, region, zone string) (subnetRef, error) {
	key := region + "/" + zone
	c.mu.Lock()
	list, ok := c.subnets[key]
	c.mu.Unlock()
	if !ok {
		vpc, err := c.vpc(ctx, region)
		if err != nil {
			return subnetRef{}, err
		}
		filters := []types.Filter{{Name: awssdk.String("vpc-id"), Values: []string{vpc}}}
		if zone != "" {
			filters = append(filters, types.Filter{Name: awssdk.String("availability-zone"), Values: []string{zone}})
		}
		out, err := c.client(region).DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: filters})
		if err != nil {
			return subnetRef{}, classify("finding subnets in "+region, err)
		}
		public := c.settings.PublicIPs == nil || *c.settings.PublicIPs
		var pub, priv []subnetRef
		for _, s := range out.Subnets {
			ref := subnetRef{id: awssdk.ToString(s.SubnetId), vpc: vpc, zone: awssdk.ToString(s.AvailabilityZone)}
			if awssdk.ToBool(s.MapPublicIpOnLaunch) {
				pub = append(pub, ref)
			} else {
				priv = append(priv, ref)
			}
		}
		list = priv
		if public {
			list = pub
		}
		sort.Slice(list, func(i, j int) bool { return list[i].zone+list[i].id < list[j].zone+list[j].id })
		c.mu.Lock()
		c.subnets[key] = list
		c.mu.Unlock()
	}
	if len(list) == 0 {
		return subnetRef{}, providers.Errorf(providers.Unsupported, "no subnet to launch into in %s (public IPs: %v)",
			cmp.Or(zone, region), c.settings.PublicIPs == nil || *c.settings.PublicIPs)
	}
	return list[0], nil
}

// securityGroup finds or makes the security group that lets SSH in.
func (c *Cloud) securityGroup(ctx context.Context, region, vpc string) (string, error) {
	key := region + "/" + vpc
	c.mu.Lock()
	id := c.groups[key]
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	cl := c.client(region)
	out, err := cl.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: awssdk.String("group-name"), Values: []string{SecurityGroupName}},
		{Name: awssdk.String("vpc-id"), Values: []string{vpc}},
	}})
	if err != nil {
		return "", classify("finding the security group in "+region, err)
	}
	if len(out.SecurityGroups) > 0 {
		id = awssdk.ToString(out.SecurityGroups[0].GroupId)
	} else {
		made, err := cl.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: awssdk.String(SecurityGroupName),
			Description: awssdk.String("dstack instances: SSH only"), VpcId: awssdk.String(vpc)})
		if err != nil && apiCode(err) == "InvalidGroup.Duplicate" {
			return c.securityGroup(ctx, region, vpc) // made meanwhile by another launch
		}
		if err != nil {
			return "", classify("making the security group in "+region, err)
		}
		id = awssdk.ToString(made.GroupId)
		_, err = cl.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(id),
			IpPermissions: []types.IpPermission{{IpProtocol: awssdk.String("tcp"), FromPort: awssdk.Int32(22), ToPort: awssdk.Int32(22),
				IpRanges: []types.IpRange{{CidrIp: awssdk.String("0.0.0.0/0"), Description: awssdk.String("SSH")}}}}})
		if err != nil && apiCode(err) != "InvalidPermission.Duplicate" {
			return "", classify("opening SSH in the security group in "+region, err)
		}
	}
	c.mu.Lock()
	c.groups[key] = id
	c.mu.Unlock()
	return id, nil
}

// placementGroup makes a cluster placement group unless it exists.
func (c *Cloud) placementGroup(ctx context.Context, region, name string) error {
	key := region + "/" + name
	c.mu.Lock()
	done := c.pgroups[key]
	c.mu.Unlock()
	if done {
		return nil
	}
	_, err := c.client(region).CreatePlacementGroup(ctx, &ec2.CreatePlacementGroupInput{GroupName: awssdk.String(name),
		Strategy: types.PlacementStrategyCluster})
	if err != nil && apiCode(err) != "InvalidPlacementGroup.Duplicate" {
		return classify("making the placement group "+name+" in "+region, err)
	}
	c.mu.Lock()
	c.pgroups[key] = true
	c.mu.Unlock()
	return nil
}

// filterBatch is how many values one filter takes.
const filterBatch = 200

// Instances implements aws.Cloud: DescribeInstances by the token tag, in
// batches, in every region at once.
func (c *Cloud) Instances(ctx context.Context, tokens []string) ([]aws.Instance, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	regions := c.regions()
	var (
		mu   sync.Mutex
		out  []aws.Instance
		errs = make([]error, len(regions))
		wg   sync.WaitGroup
	)
	for i, region := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found, err := c.instancesIn(ctx, region, tokens)
			errs[i] = err
			mu.Lock()
			out = append(out, found...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Cloud) instancesIn(ctx context.Context, region string, tokens []string) ([]aws.Instance, error) {
	var out []aws.Instance
	for batch := range slices.Chunk(tokens, filterBatch) {
		p := ec2.NewDescribeInstancesPaginator(c.client(region), &ec2.DescribeInstancesInput{
			Filters: []types.Filter{{Name: awssdk.String("tag:" + aws.TagToken), Values: batch}}, MaxResults: awssdk.Int32(1000)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, classify("describing instances in "+region, err)
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					out = append(out, instanceOf(region, i))
				}
			}
		}
	}
	return out, nil
}

func instanceOf(region string, i types.Instance) aws.Instance {
	out := aws.Instance{ID: awssdk.ToString(i.InstanceId), Region: region, InstanceType: string(i.InstanceType),
		PublicIP: awssdk.ToString(i.PublicIpAddress), PrivateIP: awssdk.ToString(i.PrivateIpAddress),
		Spot: i.InstanceLifecycle == types.InstanceLifecycleTypeSpot}
	if i.State != nil {
		out.State = string(i.State.Name)
	}
	if i.StateReason != nil {
		out.StateReason = awssdk.ToString(i.StateReason.Code)
	}
	if i.Placement != nil {
		out.Zone = awssdk.ToString(i.Placement.AvailabilityZone)
	}
	for _, t := range i.Tags {
		switch awssdk.ToString(t.Key) {
		case aws.TagToken:
			out.Token = awssdk.ToString(t.Value)
		case aws.TagAddress:
			out.Address = awssdk.ToString(t.Value)
		}
	}
	return out
}

// Terminate implements aws.Cloud.
func (c *Cloud) Terminate(ctx context.Context, region, id string) error {
	_, err := c.client(region).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil && apiCode(err) != "InvalidInstanceID.NotFound" {
		return classify("terminating "+id+" in "+region, err)
	}
	return nil
}

// CreateVolume implements aws.Cloud: an EBS gp3 volume, tagged with its
// token; the volume of a token made before is returned instead.
func (c *Cloud) CreateVolume(ctx context.Context, req aws.VolumeRequest) (aws.Volume, error) {
	found, err := c.Volumes(ctx, []string{req.Token}, nil)
	if err != nil {
		return aws.Volume{}, err
	}
	for _, v := range found {
		if v.State != "deleting" && v.State != "deleted" {
			return v, nil
		}
	}
	out, err := c.client(req.Region).CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: awssdk.String(req.Zone),
		Size: awssdk.Int32(int32(req.SizeGB)), VolumeType: types.VolumeTypeGp3,
		ClientToken:       awssdk.String(clientToken(req.Token)),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: c.tags(req.Token, req.Address, req.Tags)}}})
	if err != nil {
		return aws.Volume{}, classify(fmt.Sprintf("creating a %d GB volume in %s", req.SizeGB, req.Zone), err)
	}
	return aws.Volume{ID: awssdk.ToString(out.VolumeId), Token: req.Token, Region: req.Region, Zone: awssdk.ToString(out.AvailabilityZone),
		SizeGB: int(awssdk.ToInt32(out.Size)), State: string(out.State)}, nil
}

// Volumes implements aws.Cloud.
func (c *Cloud) Volumes(ctx context.Context, tokens []string, ids []aws.VolumeRef) ([]aws.Volume, error) {
	var out []aws.Volume
	if len(tokens) > 0 {
		for _, region := range c.regions() {
			for batch := range slices.Chunk(tokens, filterBatch) {
				got, err := c.client(region).DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
					Filters: []types.Filter{{Name: awssdk.String("tag:" + aws.TagToken), Values: batch}}})
				if err != nil {
					return nil, classify("describing volumes in "+region, err)
				}
				for _, v := range got.Volumes {
					out = append(out, volumeOf(region, v))
				}
			}
		}
	}
	for _, ref := range ids {
		got, err := c.client(ref.Region).DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{ref.ID}})
		if err != nil {
			return nil, classify("describing volume "+ref.ID+" in "+ref.Region, err)
		}
		for _, v := range got.Volumes {
			out = append(out, volumeOf(ref.Region, v))
		}
	}
	return out, nil
}

func volumeOf(region string, v types.Volume) aws.Volume {
	out := aws.Volume{ID: awssdk.ToString(v.VolumeId), Region: region, Zone: awssdk.ToString(v.AvailabilityZone),
		SizeGB: int(awssdk.ToInt32(v.Size)), State: string(v.State)}
	for _, a := range v.Attachments {
		out.Instance, out.Device = awssdk.ToString(a.InstanceId), awssdk.ToString(a.Device)
	}
	for _, t := range v.Tags {
		if awssdk.ToString(t.Key) == aws.TagToken {
			out.Token = awssdk.ToString(t.Value)
		}
	}
	return out
}

// AttachVolume implements aws.Cloud.
func (c *Cloud) AttachVolume(ctx context.Context, region, volumeID, instanceID, device string) error {
	_, err := c.client(region).AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: awssdk.String(volumeID),
		InstanceId: awssdk.String(instanceID), Device: awssdk.String(device)})
	if err != nil {
		return classify(fmt.Sprintf("attaching %s to %s", volumeID, instanceID), err)
	}
	return nil
}

// DetachVolume implements aws.Cloud.
func (c *Cloud) DetachVolume(ctx context.Context, region, volumeID string) error {
	_, err := c.client(region).DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: awssdk.String(volumeID)})
	if err != nil && apiCode(err) != "IncorrectState" && apiCode(err) != "InvalidVolume.NotFound" {
		return classify("detaching "+volumeID, err)
	}
	return nil
}

// DeleteVolume implements aws.Cloud.
func (c *Cloud) DeleteVolume(ctx context.Context, region, volumeID string) error {
	_, err := c.client(region).DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: awssdk.String(volumeID)})
	if err != nil && apiCode(err) != "InvalidVolume.NotFound" {
		return classify("deleting "+volumeID, err)
	}
	return nil
}

// ConsoleOutput implements aws.Cloud.
func (c *Cloud) ConsoleOutput(ctx context.Context, region, instanceID string) (string, error) {
	out, err := c.client(region).GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: awssdk.String(instanceID)})
	if err != nil {
		return "", classify("reading the console output of "+instanceID, err)
	}
	if out.Output == nil || *out.Output == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(*out.Output)
	if err != nil {
		return "", fmt.Errorf("the console output of %s: %w", instanceID, err)
	}
	return string(b), nil
}

// apiCode is the EC2 error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Codes maps EC2's error codes to the contract's.
var Codes = map[string]providers.Code{
	"InsufficientInstanceCapacity":         providers.NoCapacity,
	"InsufficientHostCapacity":             providers.NoCapacity,
	"InsufficientReservedInstanceCapacity": providers.NoCapacity,
	"InsufficientCapacity":                 providers.NoCapacity,
	"InsufficientCapacityOnHost":           providers.NoCapacity,
	"SpotMaxPriceTooLow":                   providers.NoCapacity,
	"InstanceLimitExceeded":                providers.Quota,
	"VcpuLimitExceeded":                    providers.Quota,
	"MaxSpotInstanceCountExceeded":         providers.Quota,
	"ReservationCapacityExceeded":          providers.Quota,
	"RequestLimitExceeded":                 providers.RateLimited,
	"Throttling":                           providers.RateLimited,
	"ThrottlingException":                  providers.RateLimited,
	"AuthFailure":                          providers.Auth,
	"UnauthorizedOperation":                providers.Auth,
	"InvalidClientTokenId":                 providers.Auth,
	"SignatureDoesNotMatch":                providers.Auth,
	"ExpiredToken":                         providers.Auth,
	"OptInRequired":                        providers.Auth,
	"InvalidInstanceID.NotFound":           providers.NotFound,
	"InvalidVolume.NotFound":               providers.NotFound,
	"Unsupported":                          providers.Unsupported,
	"UnsupportedOperation":                 providers.Unsupported,
	"InvalidParameterCombination":          providers.Unsupported,
}

// regionWide are the quota codes that hold for a whole region: no other
// zone or instance type of it can be launched until the quota is raised.
var regionWide = map[string]bool{"InstanceLimitExceeded": true, "VcpuLimitExceeded": true, "MaxSpotInstanceCountExceeded": true}

// rateLimitBackoff is the wait a throttled call asks for: EC2 gives no
// Retry-After, and its documentation suggests exponential back-off from
// about a second.
const rateLimitBackoff = time.Second

// classify wraps err with what was being done, as a *providers.Error
// when EC2's code is one the planner acts on.
func classify(doing string, err error) error {
	code := apiCode(err)
	msg := err.Error()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg = ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	var ce interface{ CanceledError() bool }
	if errors.As(err, &ce) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if c, ok := Codes[code]; ok {
		e := &providers.Error{Code: c, Err: fmt.Errorf("%s: %s", doing, msg)}
		if c == providers.RateLimited {
			e.RetryAfter = rateLimitBackoff
		}
		if regionWide[code] {
			e.Scope = providers.ScopeRegion
		}
		return e
	}
	if code == "" && isCredentialError(err) {
		return &providers.Error{Code: providers.Auth, Err: fmt.Errorf("%s: %w", doing, err)}
	}
	return fmt.Errorf("%s: %s", doing, msg)
}

// isCredentialError reports whether the SDK could not find or fetch
// credentials (nothing in the default chain).
func isCredentialError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to retrieve credentials") || strings.Contains(s, "no EC2 IMDS role found") ||
		strings.Contains(s, "static credentials are empty")
}
