package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/providers/offers"
)

// Cloud is what the provider asks of EC2. Package ec2api implements it
// with the AWS SDK; dstack reaches that implementation in a program of
// its own (dstack-provider-aws) through [StartProcess], so that the SDK
// is linked into, and initialised by, only that program.
//
// Errors are *providers.Error where EC2 said something the planner acts
// on (no capacity, a quota, throttling, bad credentials, an object that
// is gone).
type Cloud interface {
	// Offers lists the machines the account can launch.
	Offers(ctx context.Context) ([]offers.Offer, error)
	// Launch starts an instance. A second launch with the same token
	// returns the instance the first one started (EC2's ClientToken).
	Launch(ctx context.Context, req LaunchRequest) (Instance, error)
	// Instances returns the instances tagged with the tokens, in every
	// region the settings name, terminated ones included while EC2
	// still lists them.
	Instances(ctx context.Context, tokens []string) ([]Instance, error)
	// Terminate terminates an instance; one that is gone is no error.
	Terminate(ctx context.Context, region, id string) error
	// CreateVolume creates an EBS volume, or returns the one made with
	// the same token.
	CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error)
	// Volumes returns the volumes tagged with the tokens, and those
	// named by id (existing volumes a configuration names).
	Volumes(ctx context.Context, tokens []string, ids []VolumeRef) ([]Volume, error)
	// AttachVolume attaches a volume to an instance at device.
	AttachVolume(ctx context.Context, region, volumeID, instanceID, device string) error
	// DetachVolume detaches a volume from whatever it is attached to.
	DetachVolume(ctx context.Context, region, volumeID string) error
	// DeleteVolume deletes a volume; one that is gone is no error.
	DeleteVolume(ctx context.Context, region, volumeID string) error
	// ConsoleOutput returns the instance's console output, decoded (EC2
	// serves it base64-encoded); "" while it has none yet.
	ConsoleOutput(ctx context.Context, region, instanceID string) (string, error)
}

// Tags dstack puts on what it makes.
const (
	TagToken   = "dstack:token"   // the idempotency token
	TagAddress = "dstack:address" // the dstack address ("fleet.gpus[0]")
	TagName    = "Name"
)

// LaunchRequest asks for one instance.
type LaunchRequest struct {
	Token        string `json:"token"`
	Address      string `json:"address"`
	Region       string `json:"region"`
	Zone         string `json:"zone,omitempty"`
	InstanceType string `json:"instance_type"`
	Arch         string `json:"arch,omitempty"`       // x86 or arm
	GPUVendor    string `json:"gpu_vendor,omitempty"` // nvidia, amd, aws (Trainium/Inferentia)
	Spot         bool   `json:"spot,omitempty"`
	// MaxPrice is the highest spot price per hour; zero: EC2's default
	// (the on-demand price).
	MaxPrice float64 `json:"max_price,omitempty"`
	// DiskGB is the root volume's size.
	DiskGB int `json:"disk_gb,omitempty"`
	// AuthorizedKey is the public key (authorized_keys format) the
	// instance accepts for root, delivered through user-data.
	AuthorizedKey string `json:"authorized_key"`
	// Tags are the configuration's tags, added to dstack's own.
	Tags map[string]string `json:"tags,omitempty"`
	// PlacementGroup, when set, is the cluster placement group to launch
	// into (made on first use).
	PlacementGroup string `json:"placement_group,omitempty"`
	// EFA asks for an Elastic Fabric Adapter as the instance's network
	// interface.
	EFA bool `json:"efa,omitempty"`
	// Reservation is a capacity reservation (or capacity block) ID.
	Reservation string `json:"reservation,omitempty"`
}

// Instance is what EC2 says of an instance.
type Instance struct {
	ID           string `json:"id"`
	Token        string `json:"token"`
	Address      string `json:"address,omitempty"`
	Region       string `json:"region"`
	Zone         string `json:"zone,omitempty"`
	InstanceType string `json:"instance_type"`
	// State is EC2's: pending, running, shutting-down, terminated,
	// stopping, stopped.
	State string `json:"state"`
	// StateReason is EC2's state reason code ("Server.SpotInstanceTermination").
	StateReason string `json:"state_reason,omitempty"`
	Spot        bool   `json:"spot,omitempty"`
	PublicIP    string `json:"public_ip,omitempty"`
	PrivateIP   string `json:"private_ip,omitempty"`
}

// Interrupted reports whether EC2 took the instance back (a spot
// interruption).
func (i Instance) Interrupted() bool {
	return i.StateReason == "Server.SpotInstanceTermination"
}

// VolumeRequest asks for one EBS volume.
type VolumeRequest struct {
	Token   string            `json:"token"`
	Address string            `json:"address"`
	Region  string            `json:"region"`
	Zone    string            `json:"zone"`
	SizeGB  int               `json:"size_gb"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// VolumeRef names an existing volume.
type VolumeRef struct {
	Region string `json:"region"`
	ID     string `json:"id"`
}

// Volume is what EC2 says of a volume.
type Volume struct {
	ID     string `json:"id"`
	Token  string `json:"token,omitempty"`
	Region string `json:"region"`
	Zone   string `json:"zone"`
	SizeGB int    `json:"size_gb"`
	// State is EC2's: creating, available, in-use, deleting, deleted, error.
	State    string `json:"state"`
	Instance string `json:"instance,omitempty"` // attached to
	Device   string `json:"device,omitempty"`
}

// Settings are the aws backend's settings, as dstack's backend
// configuration names them. Credentials (access_key, secret_key,
// session_token, profile) are read by the program that talks to EC2 and
// never leave it.
type Settings struct {
	// Regions to use; empty: the catalog's.
	Regions []string `json:"regions,omitempty"`
	// VPCName names the VPC (by its Name tag) to launch into in every
	// region; VPCIDs names one per region. Neither: the default VPC.
	VPCName string            `json:"vpc_name,omitempty"`
	VPCIDs  map[string]string `json:"vpc_ids,omitempty"`
	// DefaultVPCs says whether the default VPC may be used where no VPC
	// is named (default true).
	DefaultVPCs *bool `json:"default_vpcs,omitempty"`
	// PublicIPs says whether instances get public IP addresses (default
	// true); without, dstack must reach their private addresses.
	PublicIPs *bool `json:"public_ips,omitempty"`
	// Tags are put on everything dstack makes.
	Tags map[string]string `json:"tags,omitempty"`
	// OSImages overrides the AMIs: per GPU vendor ("nvidia", "cpu",
	// "amd", "aws") an AMI name (wildcards allowed) and owner.
	OSImages map[string]OSImage `json:"os_images,omitempty"`
	// Credentials, when given: access_key and secret_key (and
	// session_token), or profile. Empty: the SDK's default chain.
	AccessKey    string `json:"access_key,omitempty"`
	SecretKey    string `json:"secret_key,omitempty"`
	SessionToken string `json:"session_token,omitempty"`
	Profile      string `json:"profile,omitempty"`
	// Endpoint overrides EC2's endpoint (AWS_ENDPOINT_URL_EC2 does too).
	Endpoint string `json:"endpoint,omitempty"`
	// SSHKeyDir is where the per-project SSH keys that instances accept
	// are kept, one PROJECT/id_ed25519 per project (the state's
	// lineage); default ~/.dstack/aws/projects. dstack reads it; the EC2
	// program ignores it.
	SSHKeyDir string `json:"ssh_key_dir,omitempty"`
}

// OSImage names an AMI.
type OSImage struct {
	Name  string `json:"name"`
	Owner string `json:"owner,omitempty"`
}

// String describes the settings without their credentials.
func (s Settings) String() string {
	c := s
	c.AccessKey, c.SecretKey, c.SessionToken = redact(c.AccessKey), redact(c.SecretKey), redact(c.SessionToken)
	b, _ := json.Marshal(c)
	return string(b)
}

// GoString keeps %#v from printing credentials.
func (s Settings) GoString() string { return "aws.Settings" + s.String() }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "(sensitive)"
}

// known settings, for errors about unknown ones.
var settingNames = []string{"regions", "vpc_name", "vpc_ids", "default_vpcs", "public_ips", "tags", "os_images",
	"access_key", "secret_key", "session_token", "profile", "endpoint", "ssh_key_dir"}

// ParseSettings reads settings from JSON, refusing names it does not
// know.
func ParseSettings(b []byte) (Settings, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Settings{}, fmt.Errorf("aws settings: %w", err)
	}
	for k := range raw {
		if !slices.Contains(settingNames, k) {
			return Settings{}, fmt.Errorf("aws settings: unknown setting %q (known: %s)", k, strings.Join(settingNames, ", "))
		}
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("aws settings: %w", err)
	}
	return s, nil
}

// Backend is the backend's name.
const Backend = "aws"

// efaFamilies are the instance families that have EFA, for cluster
// placement (AWS's list is longer; these are its GPU and Trainium
// training machines).
var efaFamilies = []string{"p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6e-gb200", "trn1", "trn1n", "trn2"}

// EFACapable reports whether the instance type has EFA.
func EFACapable(instanceType string) bool {
	family, size, _ := strings.Cut(instanceType, ".")
	if slices.Contains(efaFamilies, family) {
		return true
	}
	// The largest sizes of the G families have it too.
	return (strings.HasPrefix(family, "g5") || strings.HasPrefix(family, "g6")) && (size == "48xlarge" || size == "24xlarge" || size == "16xlarge" || size == "12xlarge")
}
