package lang

import (
	"github.com/dstackai/dstack-go/lang/resources"
)

// RunConfig holds the fields every run (task, service, dev environment)
// accepts.
type RunConfig struct {
	Image        string          `json:"image,omitempty" jsonschema_description:"Docker image to run; without it dstack's base image with python is used"`
	User         string          `json:"user,omitempty" jsonschema_description:"User (name or uid[:gid]) the commands run as"`
	Privileged   bool            `json:"privileged,omitempty"`
	Entrypoint   string          `json:"entrypoint,omitempty"`
	WorkingDir   string          `json:"working_dir,omitempty"`
	RegistryAuth *RegistryAuth   `json:"registry_auth,omitempty"`
	Python       string          `json:"python,omitempty" jsonschema:"enum=3.9,enum=3.10,enum=3.11,enum=3.12,enum=3.13,enum=3.14"`
	Nvcc         bool            `json:"nvcc,omitempty" jsonschema_description:"Use an image with the CUDA compiler (nvcc)"`
	SingleBranch *bool           `json:"single_branch,omitempty"`
	Env          Env             `json:"env,omitempty"`
	Shell        string          `json:"shell,omitempty" jsonschema_description:"Shell that runs the commands: sh, bash, or an absolute path"`
	Resources    *resources.Spec `json:"resources,omitempty"`
	Priority     *int            `json:"priority,omitempty" jsonschema_description:"Run priority from 0 to 100; higher runs are provisioned first"`
	Volumes      []VolumeMount   `json:"volumes,omitempty"`
	Docker       bool            `json:"docker,omitempty" jsonschema_description:"Run Docker inside the container (docker-in-docker)"`
	Repos        []Repo          `json:"repos,omitempty"`
	Files        []FileMapping   `json:"files,omitempty"`
	Setup        []string        `json:"setup,omitempty" jsonschema_description:"Deprecated: put these commands first in commands"`
	HomeDir      string          `json:"home_dir,omitempty" jsonschema_description:"Deprecated and ignored"`
}

// Profile holds the provisioning policy fields shared by runs.
type Profile struct {
	Backends          []string           `json:"backends,omitempty"`
	Regions           []string           `json:"regions,omitempty"`
	AvailabilityZones []string           `json:"availability_zones,omitempty"`
	InstanceTypes     []string           `json:"instance_types,omitempty"`
	Reservation       string             `json:"reservation,omitempty"`
	SpotPolicy        string             `json:"spot_policy,omitempty" jsonschema:"enum=spot,enum=on-demand,enum=auto"`
	Retry             *Retry             `json:"retry,omitempty"`
	MaxDuration       *Duration          `json:"max_duration,omitempty"`
	StopDuration      *Duration          `json:"stop_duration,omitempty"`
	MaxPrice          *float64           `json:"max_price,omitempty"`
	CreationPolicy    string             `json:"creation_policy,omitempty" jsonschema:"enum=reuse,enum=reuse-or-create"`
	IdleDuration      *Duration          `json:"idle_duration,omitempty"`
	UtilizationPolicy *UtilizationPolicy `json:"utilization_policy,omitempty"`
	StartupOrder      string             `json:"startup_order,omitempty" jsonschema:"enum=any,enum=master-first,enum=workers-first"`
	StopCriteria      string             `json:"stop_criteria,omitempty" jsonschema:"enum=all-done,enum=master-done"`
	Schedule          *Schedule          `json:"schedule,omitempty"`
	Fleets            []string           `json:"fleets,omitempty"`
	Tags              map[string]string  `json:"tags,omitempty"`
	Instances         []InstanceRef      `json:"instances,omitempty" jsonschema_description:"Run only on these fleet instances"`
	BackendOptions    []map[string]any   `json:"backend_options,omitempty" jsonschema_description:"Backend-specific options, passed through to the backend"`
	Deprecated
}

// Deprecated holds fields older dstack versions documented. They still
// load, so existing files keep working, with a warning naming the
// replacement.
type Deprecated struct {
	TerminationIdleTime *Duration `json:"termination_idle_time,omitempty" jsonschema_description:"Deprecated: use idle_duration"`
	TerminationPolicy   string    `json:"termination_policy,omitempty" jsonschema:"enum=dont-destroy,enum=destroy-after-idle" jsonschema_description:"Deprecated: use idle_duration"`
}

// InstanceRef names a fleet instance a run may use: an instance name, a
// host name, or a fleet and instance number.
type InstanceRef struct {
	Name     string `json:"name,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Fleet    string `json:"fleet,omitempty"`
	Instance *int   `json:"instance,omitempty"`
}

// UtilizationPolicy stops runs whose GPUs idle.
type UtilizationPolicy struct {
	MinGPUUtilization int      `json:"min_gpu_utilization" jsonschema:"required"`
	TimeWindow        Duration `json:"time_window" jsonschema:"required"`
}

// Schedule starts runs on a cron schedule.
type Schedule struct {
	Cron Strings `json:"cron" jsonschema:"required"`
}

// Task is a batch job, possibly distributed across nodes.
type Task struct {
	Type string `json:"type" jsonschema:"required,enum=task"`
	Name string `json:"name,omitempty"`
	RunConfig
	Profile
	Nodes    *int        `json:"nodes,omitempty" jsonschema_description:"Number of nodes for a distributed task"`
	Groups   []NodeGroup `json:"groups,omitempty" jsonschema_description:"Heterogeneous node groups; exclusive with nodes"`
	Commands []string    `json:"commands,omitempty"`
	Ports    []Port      `json:"ports,omitempty"`
}

// NodeGroup is a set of identical nodes of a heterogeneous task. A group
// without a name is named by its position ("0", "1", ...).
type NodeGroup struct {
	Name      string          `json:"name,omitempty"`
	Nodes     int             `json:"nodes,omitempty"`
	Resources *resources.Spec `json:"resources,omitempty"`
	Commands  []string        `json:"commands,omitempty"`
	Ports     []Port          `json:"ports,omitempty"`
}

// Kind implements Spec.
func (*Task) Kind() Kind { return KindTask }

// Service is a long-running endpoint behind the gateway, auto-scaled.
type Service struct {
	Type string `json:"type" jsonschema:"required,enum=service"`
	Name string `json:"name,omitempty"`
	RunConfig
	Profile
	Port        *Port       `json:"port,omitempty" jsonschema:"required" jsonschema_description:"The port the service's server listens on in the container"`
	Gateway     *GatewayRef `json:"gateway,omitempty"`
	StripPrefix *bool       `json:"strip_prefix,omitempty"`
	Model       *Model      `json:"model,omitempty"`
	HTTPS       *HTTPS      `json:"https,omitempty"`
	Auth        *bool       `json:"auth,omitempty"`
	Replicas    *Replicas   `json:"replicas,omitempty"`
	Scaling     *Scaling    `json:"scaling,omitempty"`
	RateLimits  []RateLimit `json:"rate_limits,omitempty"`
	Probes      []Probe     `json:"probes,omitempty"`
	Commands    []string    `json:"commands,omitempty"`
	Router      *Router     `json:"router,omitempty" jsonschema_description:"Deprecated: give a replica group router instead"`
}

// Kind implements Spec.
func (*Service) Kind() Kind { return KindService }

// Scaling scales a service's replicas on a metric.
type Scaling struct {
	Metric         string    `json:"metric" jsonschema:"required,enum=rps"`
	Target         float64   `json:"target" jsonschema:"required"`
	Window         *Duration `json:"window,omitempty"`
	ScaleUpDelay   *Duration `json:"scale_up_delay,omitempty"`
	ScaleDownDelay *Duration `json:"scale_down_delay,omitempty"`
}

// RateLimit limits requests to a service path prefix.
type RateLimit struct {
	Prefix string        `json:"prefix,omitempty"`
	Key    *RateLimitKey `json:"key,omitempty"`
	RPS    float64       `json:"rps" jsonschema:"required"`
	Burst  int           `json:"burst,omitempty"`
}

// RateLimitKey says what a rate limit counts by.
type RateLimitKey struct {
	Type   string `json:"type" jsonschema:"required,enum=ip_address,enum=header"`
	Header string `json:"header,omitempty"`
}

// Probe checks a replica's readiness.
type Probe struct {
	Type       string        `json:"type" jsonschema:"required,enum=http"`
	URL        string        `json:"url,omitempty"`
	Method     string        `json:"method,omitempty" jsonschema:"enum=get,enum=post,enum=put,enum=delete,enum=patch,enum=head"`
	Headers    []ProbeHeader `json:"headers,omitempty"`
	Body       string        `json:"body,omitempty"`
	Timeout    *Duration     `json:"timeout,omitempty"`
	Interval   *Duration     `json:"interval,omitempty"`
	ReadyAfter int           `json:"ready_after,omitempty"`
	UntilReady *bool         `json:"until_ready,omitempty"`
}

// ProbeHeader is one header a probe sends.
type ProbeHeader struct {
	Name  string `json:"name" jsonschema:"required"`
	Value string `json:"value" jsonschema:"required"`
}

// DevEnvironment is a container with an IDE attached.
type DevEnvironment struct {
	Type string `json:"type" jsonschema:"required,enum=dev-environment"`
	Name string `json:"name,omitempty"`
	RunConfig
	Profile
	IDE                string    `json:"ide,omitempty" jsonschema:"enum=vscode,enum=cursor,enum=windsurf,enum=zed" jsonschema_description:"The IDE to attach; without one the environment is reached over SSH"`
	Version            string    `json:"version,omitempty"`
	InactivityDuration *Duration `json:"inactivity_duration,omitempty"`
	Init               []string  `json:"init,omitempty"`
	Ports              []Port    `json:"ports,omitempty"`
}

// Kind implements Spec.
func (*DevEnvironment) Kind() Kind { return KindDevEnvironment }

// RunPorts is the ports a run declares for all of its jobs: a task's
// (not those of one node group), a service's port, a dev environment's;
// nil for other kinds.
func RunPorts(s Spec) []Port {
	switch r := s.(type) {
	case *Task:
		return r.Ports
	case *Service:
		if r.Port != nil {
			return []Port{*r.Port}
		}
	case *DevEnvironment:
		return r.Ports
	}
	return nil
}

// Fleet is a pool of machines, in a cloud or on-prem over SSH.
type Fleet struct {
	Type              string            `json:"type" jsonschema:"required,enum=fleet"`
	Name              string            `json:"name,omitempty"`
	Nodes             *FleetNodes       `json:"nodes,omitempty"`
	Placement         string            `json:"placement,omitempty" jsonschema:"enum=any,enum=cluster"`
	Blocks            *Blocks           `json:"blocks,omitempty"`
	Resources         *resources.Spec   `json:"resources,omitempty"`
	Env               Env               `json:"env,omitempty"`
	SSHConfig         *SSHConfig        `json:"ssh_config,omitempty"`
	Backends          []string          `json:"backends,omitempty"`
	Regions           []string          `json:"regions,omitempty"`
	AvailabilityZones []string          `json:"availability_zones,omitempty"`
	InstanceTypes     []string          `json:"instance_types,omitempty"`
	SpotPolicy        string            `json:"spot_policy,omitempty" jsonschema:"enum=spot,enum=on-demand,enum=auto"`
	Retry             *Retry            `json:"retry,omitempty"`
	MaxPrice          *float64          `json:"max_price,omitempty"`
	IdleDuration      *Duration         `json:"idle_duration,omitempty"`
	Reservation       string            `json:"reservation,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
	BackendOptions    []map[string]any  `json:"backend_options,omitempty"`
	Deprecated
}

// Kind implements Spec.
func (*Fleet) Kind() Kind { return KindFleet }

// SSHConfig makes a fleet of existing hosts reached over SSH.
type SSHConfig struct {
	User         string     `json:"user,omitempty"`
	Port         int        `json:"port,omitempty"`
	IdentityFile string     `json:"identity_file,omitempty"`
	ProxyJump    *ProxyJump `json:"proxy_jump,omitempty"`
	Hosts        []SSHHost  `json:"hosts" jsonschema:"required"`
	Network      string     `json:"network,omitempty" jsonschema_description:"CIDR of the network used for traffic between hosts, e.g. 10.0.0.0/24"`
}

// ProxyJump is a bastion host that SSH connections go through.
type ProxyJump struct {
	Hostname     string `json:"hostname" jsonschema:"required"`
	User         string `json:"user,omitempty"`
	Port         int    `json:"port,omitempty"`
	IdentityFile string `json:"identity_file,omitempty"`
}

// SSHHost is one host of an SSH fleet, written as a hostname string or a
// mapping with per-host overrides.
type SSHHost struct {
	Hostname     string     `json:"hostname" jsonschema:"required"`
	User         string     `json:"user,omitempty"`
	Port         int        `json:"port,omitempty"`
	IdentityFile string     `json:"identity_file,omitempty"`
	ProxyJump    *ProxyJump `json:"proxy_jump,omitempty"`
	InternalIP   string     `json:"internal_ip,omitempty"`
	Blocks       *Blocks    `json:"blocks,omitempty"`
}

// Volume is a network disk that runs mount.
type Volume struct {
	Type                string            `json:"type" jsonschema:"required,enum=volume"`
	Name                string            `json:"name,omitempty"`
	Backend             string            `json:"backend" jsonschema:"required"`
	Region              string            `json:"region,omitempty" jsonschema_description:"Required except on kubernetes"`
	AvailabilityZone    string            `json:"availability_zone,omitempty"`
	Size                *resources.Memory `json:"size,omitempty"`
	VolumeID            string            `json:"volume_id,omitempty" jsonschema_description:"Register an existing cloud volume instead of creating one"`
	AutoCleanupDuration *Duration         `json:"auto_cleanup_duration,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
	ClaimName           string            `json:"claim_name,omitempty" jsonschema_description:"Kubernetes: an existing PersistentVolumeClaim"`
	StorageClassName    string            `json:"storage_class_name,omitempty" jsonschema_description:"Kubernetes: the storage class of a new claim"`
	AccessModes         []string          `json:"access_modes,omitempty" jsonschema:"enum=ReadWriteOnce,enum=ReadOnlyMany,enum=ReadWriteMany,enum=ReadWriteOncePod"`
}

// Kind implements Spec.
func (*Volume) Kind() Kind { return KindVolume }

// Gateway is the ingress that serves services over a domain.
type Gateway struct {
	Type         string            `json:"type" jsonschema:"required,enum=gateway"`
	Name         string            `json:"name,omitempty"`
	Backend      string            `json:"backend" jsonschema:"required"`
	Region       string            `json:"region" jsonschema:"required"`
	Domain       string            `json:"domain,omitempty"`
	Default      bool              `json:"default,omitempty"`
	PublicIP     *bool             `json:"public_ip,omitempty"`
	Certificate  *Certificate      `json:"certificate,omitempty"`
	InstanceType string            `json:"instance_type,omitempty"`
	Router       *Router           `json:"router,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
}

// Router is a model-aware request router in front of replicas.
type Router struct {
	Type   string `json:"type" jsonschema:"required,enum=sglang"`
	Policy string `json:"policy,omitempty" jsonschema:"enum=random,enum=round_robin,enum=cache_aware,enum=power_of_two"`
	// PDDisaggregation splits prefill and decode (the deprecated service
	// router only).
	PDDisaggregation bool `json:"pd_disaggregation,omitempty"`
}

// Kind implements Spec.
func (*Gateway) Kind() Kind { return KindGateway }

// Certificate says how the gateway gets its TLS certificate.
type Certificate struct {
	Type string `json:"type" jsonschema:"required,enum=lets-encrypt,enum=acm"`
	ARN  string `json:"arn,omitempty"`
}
