package awstest

import (
	"encoding/xml"
	"strconv"
)

// vpc is a VPC.
type vpc struct {
	ID, CIDR, State string
	IsDefault       bool
	Tags            map[string]string
}

// subnet is a subnet.
type subnet struct {
	ID, VpcID, CIDR, Zone, State string
	MapPublicIP, DefaultForAz    bool
	Available                    int
}

// AddVPC adds a VPC with a subnet in each zone of region, tagged Name=name,
// whose subnets do not map public IPs unless public; it returns the
// VPC's ID.
func (f *Fake) AddVPC(region, name string, public bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(region)
	v := vpc{ID: newID("vpc"), CIDR: "10." + strconv.Itoa(len(reg.vpcs)) + ".0.0/16", State: "available", Tags: map[string]string{"Name": name}}
	reg.vpcs = append(reg.vpcs, v)
	for i, z := range Zones(region) {
		reg.subnets = append(reg.subnets, subnet{ID: newID("subnet"), VpcID: v.ID, Zone: z, State: "available", MapPublicIP: public,
			CIDR: "10." + strconv.Itoa(len(reg.vpcs)-1) + "." + strconv.Itoa(i) + ".0/24", Available: 250})
	}
	return v.ID
}

type vpcXML struct {
	VpcID           string `xml:"vpcId"`
	State           string `xml:"state"`
	CidrBlock       string `xml:"cidrBlock"`
	DhcpOptionsID   string `xml:"dhcpOptionsId"`
	InstanceTenancy string `xml:"instanceTenancy"`
	IsDefault       bool   `xml:"isDefault"`
	OwnerID         string `xml:"ownerId"`
	TagSet          []tag  `xml:"tagSet>item"`
}

type describeVpcsResponse struct {
	XMLName xml.Name `xml:"DescribeVpcsResponse"`
	Response
	Vpcs []vpcXML `xml:"vpcSet>item"`
}

type subnetXML struct {
	SubnetID                string `xml:"subnetId"`
	State                   string `xml:"state"`
	VpcID                   string `xml:"vpcId"`
	CidrBlock               string `xml:"cidrBlock"`
	AvailableIPAddressCount int    `xml:"availableIpAddressCount"`
	AvailabilityZone        string `xml:"availabilityZone"`
	DefaultForAz            bool   `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool   `xml:"mapPublicIpOnLaunch"`
	OwnerID                 string `xml:"ownerId"`
}

type describeSubnetsResponse struct {
	XMLName xml.Name `xml:"DescribeSubnetsResponse"`
	Response
	Subnets []subnetXML `xml:"subnetSet>item"`
}

// securityGroup is a security group.
type securityGroup struct {
	ID, Name, Description, VpcID string
	Tags                         map[string]string
	Rules                        []rule
}

type rule struct {
	Protocol string
	From, To int
	CIDR     string
}

type ipRange struct {
	CidrIP string `xml:"cidrIp"`
}

type ipPermission struct {
	IPProtocol string    `xml:"ipProtocol"`
	FromPort   int       `xml:"fromPort"`
	ToPort     int       `xml:"toPort"`
	IPRanges   []ipRange `xml:"ipRanges>item"`
}

type securityGroupXML struct {
	OwnerID          string         `xml:"ownerId"`
	GroupID          string         `xml:"groupId"`
	GroupName        string         `xml:"groupName"`
	GroupDescription string         `xml:"groupDescription"`
	VpcID            string         `xml:"vpcId"`
	IPPermissions    []ipPermission `xml:"ipPermissions>item"`
	TagSet           []tag          `xml:"tagSet>item"`
}

type describeSecurityGroupsResponse struct {
	XMLName xml.Name `xml:"DescribeSecurityGroupsResponse"`
	Response
	Groups []securityGroupXML `xml:"securityGroupInfo>item"`
}

type createSecurityGroupResponse struct {
	XMLName xml.Name `xml:"CreateSecurityGroupResponse"`
	Response
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId"`
	TagSet  []tag  `xml:"tagSet>item"`
}

type authorizeIngressResponse struct {
	XMLName xml.Name `xml:"AuthorizeSecurityGroupIngressResponse"`
	Response
	Return bool `xml:"return"`
}

// SecurityGroup is what a test sees of a security group: its ingress
// rules as "tcp:22:0.0.0.0/0".
type SecurityGroup struct {
	ID, Name, VpcID string
	Ingress         []string
}

// SecurityGroups returns the security groups of region.
func (f *Fake) SecurityGroups(region string) []SecurityGroup {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SecurityGroup
	for _, g := range f.regionLocked(region).groups {
		sg := SecurityGroup{ID: g.ID, Name: g.Name, VpcID: g.VpcID}
		for _, r := range g.Rules {
			sg.Ingress = append(sg.Ingress, r.Protocol+":"+strconv.Itoa(r.From)+"-"+strconv.Itoa(r.To)+":"+r.CIDR)
		}
		out = append(out, sg)
	}
	return out
}

func (f *Fake) registerNetwork() {
	f.handlers["DescribeVpcs"] = f.describeVpcs
	f.handlers["DescribeSubnets"] = f.describeSubnets
	f.handlers["CreateSecurityGroup"] = f.createSecurityGroup
	f.handlers["AuthorizeSecurityGroupIngress"] = f.authorizeIngress
	f.handlers["DescribeSecurityGroups"] = f.describeSecurityGroups
	f.handlers["DeleteSecurityGroup"] = f.deleteSecurityGroup
}

func (f *Fake) describeVpcs(r *Request) (any, error) {
	ids := r.List("VpcId")
	filters := r.Filters()
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	for _, id := range ids {
		found := false
		for _, v := range reg.vpcs {
			found = found || v.ID == id
		}
		if !found {
			return nil, Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	resp := describeVpcsResponse{Response: NewResponse()}
	for _, v := range reg.vpcs {
		if (len(ids) > 0 && !contains(ids, v.ID)) || !matchTags(v.Tags, filters) ||
			!matchField(filters, "is-default", strconv.FormatBool(v.IsDefault)) || !matchField(filters, "vpc-id", v.ID) {
			continue
		}
		resp.Vpcs = append(resp.Vpcs, vpcXML{VpcID: v.ID, State: v.State, CidrBlock: v.CIDR, DhcpOptionsID: "dopt-0a1b2c3d",
			InstanceTenancy: "default", IsDefault: v.IsDefault, OwnerID: f.account, TagSet: tagSet(v.Tags)})
	}
	return resp, nil
}

func (f *Fake) describeSubnets(r *Request) (any, error) {
	ids := r.List("SubnetId")
	filters := r.Filters()
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	resp := describeSubnetsResponse{Response: NewResponse()}
	for _, s := range reg.subnets {
		if (len(ids) > 0 && !contains(ids, s.ID)) || !matchField(filters, "vpc-id", s.VpcID) ||
			!matchField(filters, "availability-zone", s.Zone) || !matchField(filters, "default-for-az", strconv.FormatBool(s.DefaultForAz)) ||
			!matchField(filters, "map-public-ip-on-launch", strconv.FormatBool(s.MapPublicIP)) {
			continue
		}
		resp.Subnets = append(resp.Subnets, subnetXML{SubnetID: s.ID, State: s.State, VpcID: s.VpcID, CidrBlock: s.CIDR,
			AvailableIPAddressCount: s.Available, AvailabilityZone: s.Zone, DefaultForAz: s.DefaultForAz,
			MapPublicIPOnLaunch: s.MapPublicIP, OwnerID: f.account})
	}
	return resp, nil
}

func (f *Fake) createSecurityGroup(r *Request) (any, error) {
	name, desc, vpcID := r.Get("GroupName"), r.Get("GroupDescription"), r.Get("VpcId")
	if name == "" || desc == "" {
		return nil, Errorf("MissingParameter", "The request must contain the parameters GroupName and GroupDescription")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	if vpcID == "" {
		for _, v := range reg.vpcs {
			if v.IsDefault {
				vpcID = v.ID
			}
		}
	}
	for _, g := range reg.groups {
		if g.Name == name && g.VpcID == vpcID {
			return nil, Errorf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
		}
	}
	g := &securityGroup{ID: newID("sg"), Name: name, Description: desc, VpcID: vpcID, Tags: r.Tags("security-group")}
	reg.groups[g.ID] = g
	return createSecurityGroupResponse{Response: NewResponse(), Return: true, GroupID: g.ID, TagSet: tagSet(g.Tags)}, nil
}

func (f *Fake) authorizeIngress(r *Request) (any, error) {
	id := r.Get("GroupId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	g := reg.groups[id]
	if g == nil {
		return nil, Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	var add []rule
	for i := 1; i <= r.Count("IpPermissions"); i++ {
		p := "IpPermissions." + strconv.Itoa(i)
		from, _ := strconv.Atoi(r.Get(p + ".FromPort"))
		to, _ := strconv.Atoi(r.Get(p + ".ToPort"))
		for j := 1; j <= r.Count(p+".IpRanges"); j++ {
			add = append(add, rule{Protocol: r.Get(p + ".IpProtocol"), From: from, To: to, CIDR: r.Get(p + ".IpRanges." + strconv.Itoa(j) + ".CidrIp")})
		}
	}
	for _, n := range add {
		for _, o := range g.Rules {
			if n == o {
				return nil, Errorf("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists",
					n.CIDR, n.Protocol, n.From, n.To)
			}
		}
	}
	g.Rules = append(g.Rules, add...)
	return authorizeIngressResponse{Response: NewResponse(), Return: true}, nil
}

func (f *Fake) describeSecurityGroups(r *Request) (any, error) {
	ids := r.List("GroupId")
	names := r.List("GroupName")
	filters := r.Filters()
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	for _, id := range ids {
		if reg.groups[id] == nil {
			return nil, Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	resp := describeSecurityGroupsResponse{Response: NewResponse()}
	for _, g := range reg.groups {
		if (len(ids) > 0 && !contains(ids, g.ID)) || (len(names) > 0 && !contains(names, g.Name)) ||
			!matchField(filters, "group-name", g.Name) || !matchField(filters, "vpc-id", g.VpcID) || !matchTags(g.Tags, filters) {
			continue
		}
		x := securityGroupXML{OwnerID: f.account, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description, VpcID: g.VpcID,
			TagSet: tagSet(g.Tags)}
		for _, ru := range g.Rules {
			x.IPPermissions = append(x.IPPermissions, ipPermission{IPProtocol: ru.Protocol, FromPort: ru.From, ToPort: ru.To,
				IPRanges: []ipRange{{CidrIP: ru.CIDR}}})
		}
		resp.Groups = append(resp.Groups, x)
	}
	return resp, nil
}

func (f *Fake) deleteSecurityGroup(r *Request) (any, error) {
	id := r.Get("GroupId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	if reg.groups[id] == nil {
		return nil, Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	for _, i := range reg.instances {
		if i.State != "terminated" && contains(i.Groups, id) {
			return nil, Errorf("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	delete(reg.groups, id)
	return returnTrue("DeleteSecurityGroup"), nil
}
