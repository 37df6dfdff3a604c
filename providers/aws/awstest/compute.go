package awstest

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// region is what the fake keeps of one region.
type region struct {
	name       string
	instances  map[string]*instance // by ID
	order      []string             // instance IDs in launch order
	tokens     map[string]string    // client token → instance ID
	volumes    map[string]*volume
	groups     map[string]*securityGroup
	placements map[string]*placementGroup
	vpcs       []vpc
	// reservations are capacity reservations and blocks, by ID.
	reservations map[string]*reservation
	subnets      []subnet
	images       []image
}

// Zones are the availability zones of every region: REGION + a, b, c.
func Zones(region string) []string { return []string{region + "a", region + "b", region + "c"} }

// regionLocked returns the region, made with its defaults on first use.
// f.mu is held.
func (f *Fake) regionLocked(name string) *region {
	r := f.regions[name]
	if r != nil {
		return r
	}
	r = &region{name: name, instances: map[string]*instance{}, tokens: map[string]string{},
		volumes: map[string]*volume{}, groups: map[string]*securityGroup{}, placements: map[string]*placementGroup{}}
	v := vpc{ID: newID("vpc"), CIDR: "172.31.0.0/16", IsDefault: true, State: "available"}
	r.vpcs = append(r.vpcs, v)
	for i, z := range Zones(name) {
		r.subnets = append(r.subnets, subnet{ID: newID("subnet"), VpcID: v.ID, CIDR: fmt.Sprintf("172.31.%d.0/20", 16*i),
			Zone: z, State: "available", MapPublicIP: true, DefaultForAz: true, Available: 4091})
	}
	sg := &securityGroup{ID: newID("sg"), Name: "default", Description: "default VPC security group", VpcID: v.ID}
	r.groups[sg.ID] = sg
	created := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	for _, im := range []struct{ name, arch string }{
		{"Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20260110", "x86_64"},
		{"Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20260115", "x86_64"},
		{"Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20260115", "arm64"},
		{"Deep Learning AMI Neuron (Ubuntu 22.04) 20260115", "x86_64"},
		{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20260115", "x86_64"},
		{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20260115", "arm64"},
	} {
		owner := "898082745236" // the Deep Learning AMIs' owner
		if strings.HasPrefix(im.name, "ubuntu/") {
			owner = "099720109477" // Canonical
		}
		r.images = append(r.images, image{ID: newID("ami"), Name: im.name, Owner: owner, Arch: im.arch,
			State: "available", Created: created.Format(time.RFC3339), RootDevice: "/dev/sda1", Public: true})
		created = created.Add(time.Hour)
	}
	f.regions[name] = r
	return r
}

// instance is one EC2 instance.
type instance struct {
	ID, Type, Image, Zone, SubnetID, VpcID string
	ClientToken                            string
	State                                  string // pending, running, shutting-down, terminated, stopped
	StateReason                            string // code of stateReason
	StateMessage                           string
	Lifecycle                              string // "spot" or ""
	SpotMaxPrice                           string
	PlacementGroup                         string
	PublicIP, PrivateIP                    string
	PublicIPWanted                         bool
	Tags                                   map[string]string
	UserData                               []byte
	RootSize                               int
	Groups                                 []string
	EFA                                    bool
	CapacityReservation                    string
	Launched                               time.Time
	machine                                Machine
}

// Instance is what a test sees of an instance.
type Instance struct {
	ID, Region, Zone, Type, Image, State, Lifecycle, SpotMaxPrice         string
	PlacementGroup, PublicIP, PrivateIP, ClientToken, CapacityReservation string
	Tags                                                                  map[string]string
	UserData                                                              []byte
	RootSize                                                              int
	SecurityGroups                                                        []string
	EFA                                                                   bool
}

// Instances returns every instance of every region, terminated ones
// included, in launch order per region.
func (f *Fake) Instances() []Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Instance
	for _, r := range f.regions {
		for _, id := range r.order {
			i := r.instances[id]
			out = append(out, Instance{ID: i.ID, Region: r.name, Zone: i.Zone, Type: i.Type, Image: i.Image, State: i.State,
				Lifecycle: i.Lifecycle, SpotMaxPrice: i.SpotMaxPrice, PlacementGroup: i.PlacementGroup, PublicIP: i.PublicIP,
				PrivateIP: i.PrivateIP, ClientToken: i.ClientToken, Tags: i.Tags, UserData: i.UserData, RootSize: i.RootSize,
				SecurityGroups: i.Groups, EFA: i.EFA, CapacityReservation: i.CapacityReservation})
		}
	}
	return out
}

// Running returns the instances that are not terminated.
func (f *Fake) Running() []Instance {
	var out []Instance
	for _, i := range f.Instances() {
		if i.State != "terminated" {
			out = append(out, i)
		}
	}
	return out
}

// Interrupt ends a spot instance as EC2 does when it reclaims capacity:
// its machine powers off and it is terminated with reason
// Server.SpotInstanceTermination.
func (f *Fake) Interrupt(id string) error {
	f.mu.Lock()
	var inst *instance
	for _, r := range f.regions {
		if i := r.instances[id]; i != nil {
			inst = i
		}
	}
	if inst == nil {
		f.mu.Unlock()
		return fmt.Errorf("no instance %s", id)
	}
	inst.State, inst.StateReason, inst.StateMessage = "terminated", "Server.SpotInstanceTermination",
		"Server.SpotInstanceTermination: Spot instance termination"
	m := inst.machine
	inst.machine = nil
	f.mu.Unlock()
	if m != nil {
		return m.PowerOff()
	}
	return nil
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

type instanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) instanceState { return instanceState{Code: stateCodes[name], Name: name} }

type stateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type placementXML struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type groupItem struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type blockDevice struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

type instanceXML struct {
	InstanceID          string          `xml:"instanceId"`
	ImageID             string          `xml:"imageId"`
	InstanceState       instanceState   `xml:"instanceState"`
	PrivateDNSName      string          `xml:"privateDnsName"`
	DNSName             string          `xml:"dnsName"`
	Reason              string          `xml:"reason"`
	AmiLaunchIndex      int             `xml:"amiLaunchIndex"`
	InstanceType        string          `xml:"instanceType"`
	LaunchTime          string          `xml:"launchTime"`
	Placement           placementXML    `xml:"placement"`
	Monitoring          string          `xml:"monitoring>state"`
	SubnetID            string          `xml:"subnetId,omitempty"`
	VpcID               string          `xml:"vpcId,omitempty"`
	PrivateIPAddress    string          `xml:"privateIpAddress,omitempty"`
	IPAddress           string          `xml:"ipAddress,omitempty"`
	GroupSet            []groupItem     `xml:"groupSet>item"`
	StateReason         *stateReason    `xml:"stateReason,omitempty"`
	Architecture        string          `xml:"architecture"`
	RootDeviceType      string          `xml:"rootDeviceType"`
	RootDeviceName      string          `xml:"rootDeviceName"`
	BlockDeviceMapping  []blockDevice   `xml:"blockDeviceMapping>item"`
	InstanceLifecycle   string          `xml:"instanceLifecycle,omitempty"`
	VirtualizationType  string          `xml:"virtualizationType"`
	ClientToken         string          `xml:"clientToken"`
	TagSet              []tag           `xml:"tagSet>item"`
	Hypervisor          string          `xml:"hypervisor"`
	EbsOptimized        bool            `xml:"ebsOptimized"`
	EnaSupport          bool            `xml:"enaSupport"`
	CapacityReservation string          `xml:"capacityReservationId,omitempty"`
	Metadata            metadataOptions `xml:"metadataOptions"`
}

type metadataOptions struct {
	State        string `xml:"state"`
	HTTPTokens   string `xml:"httpTokens"`
	HTTPEndpoint string `xml:"httpEndpoint"`
}

func (f *Fake) instanceXML(i *instance) instanceXML {
	x := instanceXML{InstanceID: i.ID, ImageID: i.Image, InstanceState: stateOf(i.State), InstanceType: i.Type,
		LaunchTime: i.Launched.UTC().Format("2006-01-02T15:04:05.000Z"),
		Placement:  placementXML{AvailabilityZone: i.Zone, GroupName: i.PlacementGroup, Tenancy: "default"},
		Monitoring: "disabled", SubnetID: i.SubnetID, VpcID: i.VpcID, Architecture: "x86_64", RootDeviceType: "ebs",
		RootDeviceName: "/dev/sda1", InstanceLifecycle: i.Lifecycle, VirtualizationType: "hvm", ClientToken: i.ClientToken,
		TagSet: tagSet(i.Tags), Hypervisor: "xen", EnaSupport: true, CapacityReservation: i.CapacityReservation,
		Metadata: metadataOptions{State: "applied", HTTPTokens: "required", HTTPEndpoint: "enabled"}}
	if i.State != "terminated" {
		x.PrivateIPAddress = i.PrivateIP
		x.IPAddress = i.PublicIP
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(i.PrivateIP, ".", "-") + ".ec2.internal"
	}
	for _, g := range i.Groups {
		x.GroupSet = append(x.GroupSet, groupItem{GroupID: g})
	}
	if i.StateReason != "" {
		x.StateReason = &stateReason{Code: i.StateReason, Message: i.StateMessage}
		x.Reason = i.StateMessage
	}
	return x
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	GroupSet      []groupItem   `xml:"groupSet>item"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type runInstancesResponse struct {
	XMLName xml.Name `xml:"RunInstancesResponse"`
	Response
	reservationXML
}

type describeInstancesResponse struct {
	XMLName xml.Name `xml:"DescribeInstancesResponse"`
	Response
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type instanceStateChange struct {
	InstanceID    string        `xml:"instanceId"`
	CurrentState  instanceState `xml:"currentState"`
	PreviousState instanceState `xml:"previousState"`
}

type terminateInstancesResponse struct {
	XMLName xml.Name `xml:"TerminateInstancesResponse"`
	Response
	Instances []instanceStateChange `xml:"instancesSet>item"`
}

func (f *Fake) registerCompute() {
	f.handlers["RunInstances"] = f.runInstances
	f.handlers["DescribeInstances"] = f.describeInstances
	f.handlers["TerminateInstances"] = f.terminateInstances
	f.handlers["GetConsoleOutput"] = f.getConsoleOutput
	f.handlers["DescribeImages"] = f.describeImages
	f.handlers["CreatePlacementGroup"] = f.createPlacementGroup
	f.handlers["DescribePlacementGroups"] = f.describePlacementGroups
	f.handlers["DeletePlacementGroup"] = f.deletePlacementGroup
	f.handlers["DescribeCapacityReservations"] = f.describeCapacityReservations
}

func (f *Fake) runInstances(r *Request) (any, error) {
	typ := r.Get("InstanceType")
	if typ == "" {
		return nil, Errorf("MissingParameter", "The request must contain the parameter InstanceType")
	}
	if min, _ := strconv.Atoi(r.Get("MinCount")); min != 1 {
		return nil, Errorf("InvalidParameterValue", "this fake launches one instance per call (MinCount=1), not %q", r.Get("MinCount"))
	}
	userData, err := base64.StdEncoding.DecodeString(r.Get("UserData"))
	if err != nil {
		return nil, Errorf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
	}
	f.mu.Lock()
	reg := f.regionLocked(r.Region)
	if tok := r.Get("ClientToken"); tok != "" {
		if id, ok := reg.tokens[tok]; ok {
			// Idempotent: the same launch again.
			x := f.instanceXML(reg.instances[id])
			f.mu.Unlock()
			return runInstancesResponse{Response: NewResponse(), reservationXML: reservationXML{
				ReservationID: newID("r"), OwnerID: f.account, Instances: []instanceXML{x}}}, nil
		}
	}
	imageID := r.Get("ImageId")
	found := false
	for _, im := range reg.images {
		if im.ID == imageID {
			found = true
		}
	}
	if !found {
		f.mu.Unlock()
		return nil, Errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", imageID)
	}
	inst := &instance{ID: newID("i"), Type: typ, Image: imageID, ClientToken: r.Get("ClientToken"), State: "pending",
		Tags: r.Tags("instance"), UserData: userData, Launched: f.now(), CapacityReservation: r.Get("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId")}
	subnetID := r.Get("SubnetId")
	if subnetID == "" {
		subnetID = r.Get("NetworkInterface.1.SubnetId")
	}
	inst.Groups = r.List("SecurityGroupId")
	if len(inst.Groups) == 0 {
		inst.Groups = r.List("NetworkInterface.1.SecurityGroupId")
	}
	inst.EFA = r.Get("NetworkInterface.1.InterfaceType") == "efa"
	inst.PublicIPWanted = r.Get("NetworkInterface.1.AssociatePublicIpAddress") != "false"
	zone := r.Get("Placement.AvailabilityZone")
	var sn *subnet
	for k := range reg.subnets {
		s := &reg.subnets[k]
		if (subnetID != "" && s.ID == subnetID) || (subnetID == "" && (zone == "" || s.Zone == zone) && s.DefaultForAz) {
			sn = s
			break
		}
	}
	if sn == nil {
		f.mu.Unlock()
		if subnetID != "" {
			return nil, Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		return nil, Errorf("InvalidParameterValue", "Invalid availability zone: [%s]", zone)
	}
	if zone != "" && zone != sn.Zone {
		f.mu.Unlock()
		return nil, Errorf("InvalidParameterValue", "subnet %s is in %s, not in the requested zone %s", sn.ID, sn.Zone, zone)
	}
	inst.SubnetID, inst.VpcID, inst.Zone = sn.ID, sn.VpcID, sn.Zone
	if r.Get("NetworkInterface.1.AssociatePublicIpAddress") == "" {
		inst.PublicIPWanted = sn.MapPublicIP
	}
	for _, g := range inst.Groups {
		if reg.groups[g] == nil {
			f.mu.Unlock()
			return nil, Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
	}
	if pg := r.Get("Placement.GroupName"); pg != "" {
		if reg.placements[pg] == nil {
			f.mu.Unlock()
			return nil, Errorf("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", pg)
		}
		inst.PlacementGroup = pg
	}
	if res := inst.CapacityReservation; res != "" {
		if err := reg.takeReservation(res, typ, zone, r.Get("InstanceMarketOptions.MarketType")); err != nil {
			f.mu.Unlock()
			return nil, err
		}
	}
	if r.Get("InstanceMarketOptions.MarketType") == "spot" {
		inst.Lifecycle = "spot"
		inst.SpotMaxPrice = r.Get("InstanceMarketOptions.SpotOptions.MaxPrice")
	}
	for i := 1; i <= r.Count("BlockDeviceMapping"); i++ {
		p := "BlockDeviceMapping." + strconv.Itoa(i)
		if n, err := strconv.Atoi(r.Get(p + ".Ebs.VolumeSize")); err == nil {
			inst.RootSize = n
		}
	}
	f.seq++
	inst.PrivateIP = fmt.Sprintf("172.31.%d.%d", 16*indexOf(Zones(reg.name), inst.Zone)+f.seq/250, 10+f.seq%250)
	reg.instances[inst.ID] = inst
	reg.order = append(reg.order, inst.ID)
	if inst.ClientToken != "" {
		reg.tokens[inst.ClientToken] = inst.ID
	}
	x := f.instanceXML(inst)
	f.mu.Unlock()
	go f.boot(reg, inst)
	return runInstancesResponse{Response: NewResponse(), reservationXML: reservationXML{
		ReservationID: newID("r"), OwnerID: f.account, Instances: []instanceXML{x}}}, nil
}

func indexOf(list []string, v string) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return 0
}

// boot starts the instance's machine and marks it running, or
// terminated when it cannot boot.
func (f *Fake) boot(reg *region, inst *instance) {
	if f.bootDelay > 0 {
		time.Sleep(f.bootDelay)
	}
	var m Machine
	var err error
	if f.machines != nil {
		m, err = f.machines.Boot(AuthorizedKeys(inst.UserData))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if inst.State != "pending" { // terminated while booting
		if m != nil {
			go m.PowerOff()
		}
		return
	}
	if err != nil {
		inst.State, inst.StateReason, inst.StateMessage = "terminated", "Server.InternalError", "Server.InternalError: "+err.Error()
		return
	}
	inst.State = "running"
	inst.machine = m
	if m != nil && m.PrivateIP() != "" {
		inst.PrivateIP = m.PrivateIP()
	}
	if inst.PublicIPWanted {
		inst.PublicIP = "198.51.100." + strconv.Itoa(10+f.seq%240) // documentation range
		if m != nil {
			inst.PublicIP = m.PublicIP()
		}
	}
}

// AuthorizedKeys returns the SSH keys a cloud-init user-data document
// gives (its ssh_authorized_keys list), as authorized_keys lines.
func AuthorizedKeys(userData []byte) []byte {
	var out []byte
	in := false
	for _, line := range strings.Split(string(userData), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "ssh_authorized_keys:"):
			in = true
		case in && strings.HasPrefix(trimmed, "- "):
			out = append(out, strings.Trim(strings.TrimSpace(trimmed[2:]), `"'`)+"\n"...)
		case in && trimmed != "":
			in = false
		}
	}
	return out
}

// instanceMatches reports whether an instance passes DescribeInstances'
// filters.
func instanceMatches(i *instance, filters map[string][]string) bool {
	return matchTags(i.Tags, filters) && matchField(filters, "instance-state-name", i.State) &&
		matchField(filters, "instance-id", i.ID) && matchField(filters, "instance-type", i.Type) &&
		matchField(filters, "availability-zone", i.Zone) && matchField(filters, "client-token", i.ClientToken) &&
		matchField(filters, "instance-lifecycle", i.Lifecycle)
}

func (f *Fake) describeInstances(r *Request) (any, error) {
	ids := r.List("InstanceId")
	filters := r.Filters()
	max, _ := strconv.Atoi(r.Get("MaxResults"))
	if len(ids) > 0 && max > 0 {
		return nil, Errorf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	start := 0
	if nt := r.Get("NextToken"); nt != "" {
		n, err := strconv.Atoi(nt)
		if err != nil {
			return nil, Errorf("InvalidParameterValue", "Invalid value '%s' for nextToken", nt)
		}
		start = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	for _, id := range ids {
		if reg.instances[id] == nil {
			return nil, Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	var matched []*instance
	for _, id := range reg.order {
		i := reg.instances[id]
		if (len(ids) == 0 || contains(ids, id)) && instanceMatches(i, filters) {
			matched = append(matched, i)
		}
	}
	resp := describeInstancesResponse{Response: NewResponse()}
	end := len(matched)
	if max > 0 && start+max < end {
		end = start + max
		resp.NextToken = strconv.Itoa(end)
	}
	for _, i := range matched[min(start, len(matched)):end] {
		resp.Reservations = append(resp.Reservations, reservationXML{ReservationID: "r-" + i.ID[2:], OwnerID: f.account,
			Instances: []instanceXML{f.instanceXML(i)}})
	}
	return resp, nil
}

func (f *Fake) terminateInstances(r *Request) (any, error) {
	ids := r.List("InstanceId")
	if len(ids) == 0 {
		return nil, Errorf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	f.mu.Lock()
	reg := f.regionLocked(r.Region)
	for _, id := range ids {
		if reg.instances[id] == nil {
			f.mu.Unlock()
			return nil, Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	resp := terminateInstancesResponse{Response: NewResponse()}
	var off []Machine
	for _, id := range ids {
		i := reg.instances[id]
		prev := i.State
		if i.State != "terminated" {
			i.State, i.StateReason, i.StateMessage = "terminated", "Client.UserInitiatedShutdown",
				"Client.UserInitiatedShutdown: User initiated shutdown"
		}
		if i.machine != nil {
			off = append(off, i.machine)
			i.machine = nil
		}
		// Volumes attached to it are detached.
		for _, v := range reg.volumes {
			if v.Instance == id {
				v.Instance, v.Device, v.State = "", "", "available"
			}
		}
		resp.Instances = append(resp.Instances, instanceStateChange{InstanceID: id, CurrentState: stateOf("shutting-down"),
			PreviousState: stateOf(prev)})
		if prev == "terminated" {
			resp.Instances[len(resp.Instances)-1].CurrentState = stateOf("terminated")
		}
	}
	f.mu.Unlock()
	for _, m := range off {
		_ = m.PowerOff()
	}
	return resp, nil
}

// image is an AMI.
type image struct {
	ID, Name, Owner, Arch, State, Created, RootDevice string
	Public                                            bool
}

type imageXML struct {
	ImageID            string `xml:"imageId"`
	ImageLocation      string `xml:"imageLocation"`
	ImageState         string `xml:"imageState"`
	ImageOwnerID       string `xml:"imageOwnerId"`
	CreationDate       string `xml:"creationDate"`
	IsPublic           bool   `xml:"isPublic"`
	Architecture       string `xml:"architecture"`
	ImageType          string `xml:"imageType"`
	Name               string `xml:"name"`
	RootDeviceType     string `xml:"rootDeviceType"`
	RootDeviceName     string `xml:"rootDeviceName"`
	VirtualizationType string `xml:"virtualizationType"`
	Hypervisor         string `xml:"hypervisor"`
	EnaSupport         bool   `xml:"enaSupport"`
}

type describeImagesResponse struct {
	XMLName xml.Name `xml:"DescribeImagesResponse"`
	Response
	Images []imageXML `xml:"imagesSet>item"`
}

// globMatch matches EC2's filter wildcards: * any run, ? one character.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && globMatch(pattern[1:], s[1:])
}

func matchGlob(filters map[string][]string, name, value string) bool {
	values, ok := filters[name]
	if !ok {
		return true
	}
	for _, p := range values {
		if globMatch(p, value) {
			return true
		}
	}
	return false
}

func (f *Fake) describeImages(r *Request) (any, error) {
	ids := r.List("ImageId")
	owners := r.List("Owner")
	filters := r.Filters()
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	resp := describeImagesResponse{Response: NewResponse()}
	for _, im := range reg.images {
		if len(ids) > 0 && !contains(ids, im.ID) {
			continue
		}
		if len(owners) > 0 && !contains(owners, im.Owner) && !(contains(owners, "amazon") && im.Owner == "898082745236") {
			continue
		}
		if !matchGlob(filters, "name", im.Name) || !matchField(filters, "architecture", im.Arch) ||
			!matchField(filters, "state", im.State) || !matchField(filters, "owner-id", im.Owner) {
			continue
		}
		resp.Images = append(resp.Images, imageXML{ImageID: im.ID, ImageLocation: im.Owner + "/" + im.Name, ImageState: im.State,
			ImageOwnerID: im.Owner, CreationDate: im.Created, IsPublic: im.Public, Architecture: im.Arch, ImageType: "machine",
			Name: im.Name, RootDeviceType: "ebs", RootDeviceName: im.RootDevice, VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true})
	}
	return resp, nil
}

// placementGroup is a placement group.
type placementGroup struct {
	ID, Name, Strategy string
}

type placementGroupXML struct {
	GroupName string `xml:"groupName"`
	State     string `xml:"state"`
	Strategy  string `xml:"strategy"`
	GroupID   string `xml:"groupId"`
	GroupArn  string `xml:"groupArn"`
}

type createPlacementGroupResponse struct {
	XMLName xml.Name `xml:"CreatePlacementGroupResponse"`
	Response
	Return         bool              `xml:"return"`
	PlacementGroup placementGroupXML `xml:"placementGroup"`
}

type describePlacementGroupsResponse struct {
	XMLName xml.Name `xml:"DescribePlacementGroupsResponse"`
	Response
	Groups []placementGroupXML `xml:"placementGroupSet>item"`
}

func (f *Fake) pgXML(region string, g *placementGroup) placementGroupXML {
	return placementGroupXML{GroupName: g.Name, State: "available", Strategy: g.Strategy, GroupID: g.ID,
		GroupArn: fmt.Sprintf("arn:aws:ec2:%s:%s:placement-group/%s", region, f.account, g.Name)}
}

func (f *Fake) createPlacementGroup(r *Request) (any, error) {
	name, strategy := r.Get("GroupName"), r.Get("Strategy")
	if name == "" {
		return nil, Errorf("MissingParameter", "The request must contain the parameter GroupName")
	}
	if strategy != "cluster" && strategy != "spread" && strategy != "partition" {
		return nil, Errorf("InvalidParameterValue", "Invalid value '%s' for strategy", strategy)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	if reg.placements[name] != nil {
		return nil, Errorf("InvalidPlacementGroup.Duplicate", "The placement group '%s' already exists.", name)
	}
	g := &placementGroup{ID: newID("pg"), Name: name, Strategy: strategy}
	reg.placements[name] = g
	return createPlacementGroupResponse{Response: NewResponse(), Return: true, PlacementGroup: f.pgXML(reg.name, g)}, nil
}

func (f *Fake) describePlacementGroups(r *Request) (any, error) {
	names := r.List("GroupName")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	resp := describePlacementGroupsResponse{Response: NewResponse()}
	for _, n := range names {
		if reg.placements[n] == nil {
			return nil, Errorf("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", n)
		}
	}
	for _, g := range reg.placements {
		if len(names) == 0 || contains(names, g.Name) {
			resp.Groups = append(resp.Groups, f.pgXML(reg.name, g))
		}
	}
	return resp, nil
}

func (f *Fake) deletePlacementGroup(r *Request) (any, error) {
	name := r.Get("GroupName")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	if reg.placements[name] == nil {
		return nil, Errorf("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", name)
	}
	for _, i := range reg.instances {
		if i.PlacementGroup == name && i.State != "terminated" {
			return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidPlacementGroup.InUse",
				Message: fmt.Sprintf("The placement group '%s' is in use.", name)}
		}
	}
	delete(reg.placements, name)
	return returnTrue("DeletePlacementGroup"), nil
}
