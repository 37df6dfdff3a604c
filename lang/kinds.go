package lang

import (
	"github.com/dstackai/dstack-go/lang/resources"
)

// RunConfig holds the fields every run (task, service, dev environment)
// accepts.
type RunConfig struct {
	Image        string          `json:"image,omitempty" jsonschema_description:"Docker image to run; without it the run uses dstack's base image (dstackai/base, its devel flavour with nvcc)"`
	Runtime      string          `json:"runtime,omitempty" jsonschema:"enum=docker,enum=host" jsonschema_description:"How the run's commands run: docker (the default: in a container of image, or of dstack's base image) or host (as processes on the host, for hosts without Docker; no image)"`
	User         string          `json:"user,omitempty" jsonschema_description:"User (name or uid[:gid]) the commands run as"`
	Privileged   bool            `json:"privileged,omitempty" jsonschema_description:"Run the container in privileged mode"`
	Entrypoint   string          `json:"entrypoint,omitempty" jsonschema_description:"Override the image's entrypoint"`
	WorkingDir   string          `json:"working_dir,omitempty" jsonschema_description:"Directory in the container the commands run in"`
	RegistryAuth *RegistryAuth   `json:"registry_auth,omitempty" jsonschema_description:"Credentials for pulling the image from a private registry"`
	Python       string          `json:"python,omitempty" jsonschema:"enum=3.9,enum=3.10,enum=3.11,enum=3.12,enum=3.13,enum=3.14" jsonschema_description:"Python version of dstack's base image: a virtual environment of it, made with uv, is active for the commands; used when no image is given"`
	Nvcc         bool            `json:"nvcc,omitempty" jsonschema_description:"Use the devel flavour of dstack's base image, with the CUDA compiler (nvcc)"`
	SingleBranch *bool           `json:"single_branch,omitempty" jsonschema_description:"Clone only the current branch of the repo: the run gets one commit's files, so false is refused"`
	Env          Env             `json:"env,omitempty" jsonschema_description:"Environment variables set in the container"`
	Shell        string          `json:"shell,omitempty" jsonschema_description:"Shell that runs the commands: sh, bash, or an absolute path"`
	Resources    *resources.Spec `json:"resources,omitempty" jsonschema_description:"Resources each node or replica needs: CPU, memory, shared memory, GPU and disk"`
	Priority     *int            `json:"priority,omitempty" jsonschema_description:"Run priority from 0 to 100; higher runs are provisioned first"`
	Volumes      []VolumeMount   `json:"volumes,omitempty" jsonschema_description:"Volumes mounted into the container: dstack volumes or directories of the host"`
	Docker       bool            `json:"docker,omitempty" jsonschema_description:"Run Docker inside the container (docker-in-docker)"`
	Dstack       bool            `json:"dstack,omitempty" jsonschema_description:"Give the run the dstack CLI, with this configuration's directory (and its state) at $DSTACK_CONFIG_DIR; no credentials are provided"`
	Repos        []Repo          `json:"repos,omitempty" jsonschema_description:"The git repository put into the run's working directory (at most one): a local one at its commit plus the uncommitted changes, or a URL cloned on this machine with your git credentials; uploaded once per content hash per host"`
	Files        []FileMapping   `json:"files,omitempty" jsonschema_description:"Local files and directories copied into the run; a relative path in the run is taken from the working directory"`
	Setup        []string        `json:"setup,omitempty" jsonschema_description:"Deprecated: put these commands first in commands"`
	HomeDir      string          `json:"home_dir,omitempty" jsonschema_description:"Deprecated and ignored"`
}

// Profile holds the provisioning policy fields shared by runs.
type Profile struct {
	Backends          []string           `json:"backends,omitempty" jsonschema_description:"Backends to provision in; every configured backend when unset"`
	Regions           []string           `json:"regions,omitempty" jsonschema_description:"Regions to provision in"`
	AvailabilityZones []string           `json:"availability_zones,omitempty" jsonschema_description:"Availability zones to provision in"`
	InstanceTypes     []string           `json:"instance_types,omitempty" jsonschema_description:"Cloud instance types to use"`
	Reservation       string             `json:"reservation,omitempty" jsonschema_description:"Capacity reservation (e.g. an AWS capacity reservation ID) to provision from"`
	SpotPolicy        string             `json:"spot_policy,omitempty" jsonschema:"enum=spot,enum=on-demand,enum=auto" jsonschema_description:"Use spot or on-demand instances; auto takes either"`
	Retry             *Retry             `json:"retry,omitempty" jsonschema_description:"When and for how long a failed run is resubmitted"`
	MaxDuration       *Duration          `json:"max_duration,omitempty" jsonschema_description:"How long the run may run before dstack stops it"`
	StopDuration      *Duration          `json:"stop_duration,omitempty" jsonschema_description:"How long a stopping run has to exit gracefully before it is killed"`
	MaxPrice          *float64           `json:"max_price,omitempty" jsonschema_description:"Highest price of an instance, in USD per hour"`
	CreationPolicy    string             `json:"creation_policy,omitempty" jsonschema:"enum=reuse,enum=reuse-or-create" jsonschema_description:"Whether the run may get new instances: reuse runs only on instances of existing fleets, reuse-or-create also provisions new ones"`
	IdleDuration      *Duration          `json:"idle_duration,omitempty" jsonschema_description:"How long an instance made for the run is kept idle before it is terminated"`
	UtilizationPolicy *UtilizationPolicy `json:"utilization_policy,omitempty" jsonschema_description:"Stop the run when its GPUs stay under a utilization for a time window"`
	StartupOrder      string             `json:"startup_order,omitempty" jsonschema:"enum=any,enum=master-first,enum=workers-first" jsonschema_description:"The order a distributed task's nodes start in"`
	StopCriteria      string             `json:"stop_criteria,omitempty" jsonschema:"enum=all-done,enum=master-done" jsonschema_description:"When a distributed task is done: when all its nodes are, or when the master node is"`
	Schedule          *Schedule          `json:"schedule,omitempty" jsonschema_description:"Start the run on a cron schedule"`
	Fleets            []string           `json:"fleets,omitempty" jsonschema_description:"Run only on instances of these fleets"`
	Tags              map[string]string  `json:"tags,omitempty" jsonschema_description:"Tags set on the cloud resources made for the run"`
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
	Name     string `json:"name,omitempty" jsonschema_description:"The instance's name"`
	Hostname string `json:"hostname,omitempty" jsonschema_description:"The instance's host name"`
	Fleet    string `json:"fleet,omitempty" jsonschema_description:"The fleet the instance belongs to"`
	Instance *int   `json:"instance,omitempty" jsonschema_description:"The instance's number in the fleet"`
}

// UtilizationPolicy stops runs whose GPUs idle.
type UtilizationPolicy struct {
	MinGPUUtilization int      `json:"min_gpu_utilization" jsonschema:"required" jsonschema_description:"GPU utilization, in percent, below which a GPU counts as idle"`
	TimeWindow        Duration `json:"time_window" jsonschema:"required" jsonschema_description:"How long the GPUs may stay under min_gpu_utilization before the run is stopped"`
}

// Schedule starts runs on a cron schedule.
type Schedule struct {
	Cron Strings `json:"cron" jsonschema:"required" jsonschema_description:"Cron expressions (in UTC) at which the run starts"`
}

// Task is a batch job, possibly distributed across nodes.
type Task struct {
	Type string `json:"type" jsonschema:"required,enum=task" jsonschema_description:"The kind of configuration"`
	Name string `json:"name,omitempty" jsonschema_description:"The run's name: lower-case letters, digits and dashes, starting with a letter"`
	RunConfig
	Profile
	Nodes    *int        `json:"nodes,omitempty" jsonschema_description:"Number of nodes for a distributed task"`
	Groups   []NodeGroup `json:"groups,omitempty" jsonschema_description:"Heterogeneous node groups; exclusive with nodes"`
	Commands []string    `json:"commands,omitempty" jsonschema_description:"Shell commands the task runs, in order"`
	Ports    []Port      `json:"ports,omitempty" jsonschema_description:"Container ports forwarded to this machine while the run is attached"`
}

// NodeGroup is a set of identical nodes of a heterogeneous task. A group
// without a name is named by its position ("0", "1", ...).
type NodeGroup struct {
	Name      string          `json:"name,omitempty" jsonschema_description:"The group's name; its position when unset"`
	Nodes     int             `json:"nodes,omitempty" jsonschema_description:"Number of nodes in the group"`
	Resources *resources.Spec `json:"resources,omitempty" jsonschema_description:"Resources each node of the group needs"`
	Commands  []string        `json:"commands,omitempty" jsonschema_description:"Shell commands the group's nodes run"`
	Ports     []Port          `json:"ports,omitempty" jsonschema_description:"Container ports of the group's nodes"`
}

// Kind implements Spec.
func (*Task) Kind() Kind { return KindTask }

// Service is a long-running endpoint behind the gateway, auto-scaled.
type Service struct {
	Type string `json:"type" jsonschema:"required,enum=service" jsonschema_description:"The kind of configuration"`
	Name string `json:"name,omitempty" jsonschema_description:"The run's name: lower-case letters, digits and dashes, starting with a letter"`
	RunConfig
	Profile
	Port        *Port       `json:"port,omitempty" jsonschema:"required" jsonschema_description:"The port the service's server listens on in the container"`
	Gateway     *GatewayRef `json:"gateway,omitempty" jsonschema_description:"The gateway the service is published on"`
	StripPrefix *bool       `json:"strip_prefix,omitempty" jsonschema_description:"Strip the service's path prefix from requests before they reach it"`
	Model       *Model      `json:"model,omitempty" jsonschema_description:"The model the service serves, published on the OpenAI-compatible endpoint"`
	HTTPS       *HTTPS      `json:"https,omitempty" jsonschema_description:"Serve the service over HTTPS on the gateway"`
	Auth        *bool       `json:"auth,omitempty" jsonschema_description:"Require a dstack token in requests to the service"`
	Replicas    *Replicas   `json:"replicas,omitempty" jsonschema_description:"Number of replicas, a range scaling moves within, or replica groups"`
	Scaling     *Scaling    `json:"scaling,omitempty" jsonschema_description:"How the number of replicas follows a metric"`
	RateLimits  []RateLimit `json:"rate_limits,omitempty" jsonschema_description:"Limits on the request rate, per path prefix"`
	Probes      []Probe     `json:"probes,omitempty" jsonschema_description:"Readiness checks a replica must pass before it gets requests"`
	Commands    []string    `json:"commands,omitempty" jsonschema_description:"Shell commands that start the service"`
	Router      *Router     `json:"router,omitempty" jsonschema_description:"Deprecated: give a replica group router instead"`
}

// Kind implements Spec.
func (*Service) Kind() Kind { return KindService }

// Scaling scales a service's replicas on a metric.
type Scaling struct {
	Metric         string    `json:"metric" jsonschema:"required,enum=rps" jsonschema_description:"The metric to scale on: requests per second"`
	Target         float64   `json:"target" jsonschema:"required" jsonschema_description:"The metric's target value per replica"`
	Window         *Duration `json:"window,omitempty" jsonschema_description:"The time window the metric is averaged over"`
	ScaleUpDelay   *Duration `json:"scale_up_delay,omitempty" jsonschema_description:"Least time after the last scaling before replicas are added"`
	ScaleDownDelay *Duration `json:"scale_down_delay,omitempty" jsonschema_description:"Least time after the last scaling before replicas are removed"`
}

// RateLimit limits requests to a service path prefix.
type RateLimit struct {
	Prefix string        `json:"prefix,omitempty" jsonschema_description:"Path prefix the limit applies to; every path when unset"`
	Key    *RateLimitKey `json:"key,omitempty" jsonschema_description:"What requests are counted by; the client IP address when unset"`
	RPS    float64       `json:"rps" jsonschema:"required" jsonschema_description:"Requests per second allowed"`
	Burst  int           `json:"burst,omitempty" jsonschema_description:"Requests allowed above the rate in a burst"`
}

// RateLimitKey says what a rate limit counts by.
type RateLimitKey struct {
	Type   string `json:"type" jsonschema:"required,enum=ip_address,enum=header" jsonschema_description:"Count requests per client IP address or per value of a header"`
	Header string `json:"header,omitempty" jsonschema_description:"The header whose value requests are counted by (type header)"`
}

// Probe checks a replica's readiness.
type Probe struct {
	Type       string        `json:"type" jsonschema:"required,enum=http" jsonschema_description:"The kind of probe"`
	URL        string        `json:"url,omitempty" jsonschema_description:"Path the probe requests; / when unset"`
	Method     string        `json:"method,omitempty" jsonschema:"enum=get,enum=post,enum=put,enum=delete,enum=patch,enum=head" jsonschema_description:"HTTP method of the request; get when unset"`
	Headers    []ProbeHeader `json:"headers,omitempty" jsonschema_description:"Headers the probe sends"`
	Body       string        `json:"body,omitempty" jsonschema_description:"Request body the probe sends"`
	Timeout    *Duration     `json:"timeout,omitempty" jsonschema_description:"How long a probe request may take"`
	Interval   *Duration     `json:"interval,omitempty" jsonschema_description:"Time between probe requests"`
	ReadyAfter int           `json:"ready_after,omitempty" jsonschema_description:"Passes in a row needed before the replica counts as ready; 1 when unset"`
	UntilReady *bool         `json:"until_ready,omitempty" jsonschema_description:"Stop probing once the replica is ready"`
}

// ProbeHeader is one header a probe sends.
type ProbeHeader struct {
	Name  string `json:"name" jsonschema:"required" jsonschema_description:"The header's name"`
	Value string `json:"value" jsonschema:"required" jsonschema_description:"The header's value"`
}

// DevEnvironment is a container with an IDE attached.
type DevEnvironment struct {
	Type string `json:"type" jsonschema:"required,enum=dev-environment" jsonschema_description:"The kind of configuration"`
	Name string `json:"name,omitempty" jsonschema_description:"The run's name: lower-case letters, digits and dashes, starting with a letter"`
	RunConfig
	Profile
	IDE                string    `json:"ide,omitempty" jsonschema:"enum=vscode,enum=cursor,enum=windsurf,enum=zed" jsonschema_description:"The IDE to attach; without one the environment is reached over SSH"`
	Version            string    `json:"version,omitempty" jsonschema_description:"Version of the IDE to install"`
	InactivityDuration *Duration `json:"inactivity_duration,omitempty" jsonschema_description:"How long the environment may run with no client attached before it is stopped"`
	Init               []string  `json:"init,omitempty" jsonschema_description:"Shell commands run when the environment starts"`
	Ports              []Port    `json:"ports,omitempty" jsonschema_description:"Container ports forwarded to this machine while the run is attached"`
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
	Type              string            `json:"type" jsonschema:"required,enum=fleet" jsonschema_description:"The kind of configuration"`
	Name              string            `json:"name,omitempty" jsonschema_description:"The fleet's name: lower-case letters, digits and dashes, starting with a letter"`
	Nodes             *FleetNodes       `json:"nodes,omitempty" jsonschema_description:"Number of instances: a number, or a range the fleet scales within"`
	Placement         string            `json:"placement,omitempty" jsonschema:"enum=any,enum=cluster" jsonschema_description:"How the instances are placed: cluster puts them together on a fast interconnect"`
	Blocks            *Blocks           `json:"blocks,omitempty" jsonschema_description:"Blocks each instance is split into, each with a share of its resources, so several runs can share it"`
	Resources         *resources.Spec   `json:"resources,omitempty" jsonschema_description:"Resources each instance must have"`
	Env               Env               `json:"env,omitempty" jsonschema_description:"Environment variables set for the fleet's instances"`
	SSHConfig         *SSHConfig        `json:"ssh_config,omitempty" jsonschema_description:"Make the fleet of existing hosts reached over SSH instead of cloud instances"`
	Backends          []string          `json:"backends,omitempty" jsonschema_description:"Backends to provision in; every configured backend when unset"`
	Regions           []string          `json:"regions,omitempty" jsonschema_description:"Regions to provision in"`
	AvailabilityZones []string          `json:"availability_zones,omitempty" jsonschema_description:"Availability zones to provision in"`
	InstanceTypes     []string          `json:"instance_types,omitempty" jsonschema_description:"Cloud instance types to use"`
	SpotPolicy        string            `json:"spot_policy,omitempty" jsonschema:"enum=spot,enum=on-demand,enum=auto" jsonschema_description:"Use spot or on-demand instances; auto takes either"`
	Retry             *Retry            `json:"retry,omitempty" jsonschema_description:"When and for how long failed provisioning is retried"`
	MaxPrice          *float64          `json:"max_price,omitempty" jsonschema_description:"Highest price of an instance, in USD per hour"`
	IdleDuration      *Duration         `json:"idle_duration,omitempty" jsonschema_description:"How long an instance may stay idle before it is terminated"`
	Reservation       string            `json:"reservation,omitempty" jsonschema_description:"Capacity reservation (e.g. an AWS capacity reservation ID) to provision from"`
	Tags              map[string]string `json:"tags,omitempty" jsonschema_description:"Tags set on the fleet's cloud resources"`
	BackendOptions    []map[string]any  `json:"backend_options,omitempty" jsonschema_description:"Backend-specific options, passed through to the backend"`
	Deprecated
}

// Kind implements Spec.
func (*Fleet) Kind() Kind { return KindFleet }

// SSHConfig makes a fleet of existing hosts reached over SSH.
type SSHConfig struct {
	User         string     `json:"user,omitempty" jsonschema_description:"User to log in as on every host"`
	Port         int        `json:"port,omitempty" jsonschema_description:"SSH port of every host; 22 when unset"`
	IdentityFile string     `json:"identity_file,omitempty" jsonschema_description:"Private key file to log in with"`
	ProxyJump    *ProxyJump `json:"proxy_jump,omitempty" jsonschema_description:"Bastion host the SSH connections go through"`
	Hosts        []SSHHost  `json:"hosts" jsonschema:"required" jsonschema_description:"The fleet's hosts"`
	Network      string     `json:"network,omitempty" jsonschema_description:"CIDR of the network used for traffic between hosts, e.g. 10.0.0.0/24"`
}

// ProxyJump is a bastion host that SSH connections go through.
type ProxyJump struct {
	Hostname     string `json:"hostname" jsonschema:"required" jsonschema_description:"The bastion's host name or address"`
	User         string `json:"user,omitempty" jsonschema_description:"User to log in to the bastion as"`
	Port         int    `json:"port,omitempty" jsonschema_description:"SSH port of the bastion; 22 when unset"`
	IdentityFile string `json:"identity_file,omitempty" jsonschema_description:"Private key file to log in to the bastion with"`
}

// SSHHost is one host of an SSH fleet, written as a hostname string or a
// mapping with per-host overrides.
type SSHHost struct {
	Hostname     string     `json:"hostname" jsonschema:"required" jsonschema_description:"The host's name or address"`
	User         string     `json:"user,omitempty" jsonschema_description:"User to log in as, instead of ssh_config's"`
	Port         int        `json:"port,omitempty" jsonschema_description:"SSH port, instead of ssh_config's"`
	IdentityFile string     `json:"identity_file,omitempty" jsonschema_description:"Private key file, instead of ssh_config's"`
	ProxyJump    *ProxyJump `json:"proxy_jump,omitempty" jsonschema_description:"Bastion host, instead of ssh_config's"`
	InternalIP   string     `json:"internal_ip,omitempty" jsonschema_description:"The host's address for traffic between the fleet's hosts"`
	Blocks       *Blocks    `json:"blocks,omitempty" jsonschema_description:"Blocks the host is split into, instead of the fleet's"`
}

// Volume is a network disk that runs mount.
type Volume struct {
	Type                string            `json:"type" jsonschema:"required,enum=volume" jsonschema_description:"The kind of configuration"`
	Name                string            `json:"name,omitempty" jsonschema_description:"The volume's name: lower-case letters, digits and dashes, starting with a letter"`
	Backend             string            `json:"backend" jsonschema:"required" jsonschema_description:"Backend the volume is made in"`
	Region              string            `json:"region,omitempty" jsonschema_description:"Required except on kubernetes"`
	AvailabilityZone    string            `json:"availability_zone,omitempty" jsonschema_description:"Availability zone of the volume"`
	Size                *resources.Memory `json:"size,omitempty" jsonschema_description:"Size of a new volume, e.g. 100GB"`
	VolumeID            string            `json:"volume_id,omitempty" jsonschema_description:"Register an existing cloud volume instead of creating one"`
	AutoCleanupDuration *Duration         `json:"auto_cleanup_duration,omitempty" jsonschema_description:"How long the volume may go unused before it is deleted"`
	Tags                map[string]string `json:"tags,omitempty" jsonschema_description:"Tags set on the volume's cloud resources"`
	ClaimName           string            `json:"claim_name,omitempty" jsonschema_description:"Kubernetes: an existing PersistentVolumeClaim"`
	StorageClassName    string            `json:"storage_class_name,omitempty" jsonschema_description:"Kubernetes: the storage class of a new claim"`
	AccessModes         []string          `json:"access_modes,omitempty" jsonschema:"enum=ReadWriteOnce,enum=ReadOnlyMany,enum=ReadWriteMany,enum=ReadWriteOncePod" jsonschema_description:"Kubernetes: the access modes of a new claim"`
}

// Kind implements Spec.
func (*Volume) Kind() Kind { return KindVolume }

// Gateway is the ingress that serves services over a domain.
type Gateway struct {
	Type         string            `json:"type" jsonschema:"required,enum=gateway" jsonschema_description:"The kind of configuration"`
	Name         string            `json:"name,omitempty" jsonschema_description:"The gateway's name: lower-case letters, digits and dashes, starting with a letter"`
	Backend      string            `json:"backend" jsonschema:"required" jsonschema_description:"Backend the gateway runs in"`
	Region       string            `json:"region" jsonschema:"required" jsonschema_description:"Region the gateway runs in"`
	Domain       string            `json:"domain,omitempty" jsonschema_description:"Domain the gateway serves services under (each at NAME.DOMAIN)"`
	Default      bool              `json:"default,omitempty" jsonschema_description:"Make it the project's default gateway"`
	PublicIP     *bool             `json:"public_ip,omitempty" jsonschema_description:"Give the gateway a public IP address"`
	Certificate  *Certificate      `json:"certificate,omitempty" jsonschema_description:"How the gateway gets its TLS certificate"`
	InstanceType string            `json:"instance_type,omitempty" jsonschema_description:"Cloud instance type of the gateway"`
	Router       *Router           `json:"router,omitempty" jsonschema_description:"Model-aware request router in front of the replicas of its services"`
	Tags         map[string]string `json:"tags,omitempty" jsonschema_description:"Tags set on the gateway's cloud resources"`
}

// Router is a model-aware request router in front of replicas.
type Router struct {
	Type   string `json:"type" jsonschema:"required,enum=sglang" jsonschema_description:"The kind of router"`
	Policy string `json:"policy,omitempty" jsonschema:"enum=random,enum=round_robin,enum=cache_aware,enum=power_of_two" jsonschema_description:"How the router picks a replica"`
	// PDDisaggregation splits prefill and decode (the deprecated service
	// router only).
	PDDisaggregation bool `json:"pd_disaggregation,omitempty" jsonschema_description:"Split prefill and decode across replicas"`
}

// Kind implements Spec.
func (*Gateway) Kind() Kind { return KindGateway }

// Certificate says how the gateway gets its TLS certificate.
type Certificate struct {
	Type string `json:"type" jsonschema:"required,enum=lets-encrypt,enum=acm" jsonschema_description:"Where the certificate comes from: lets-encrypt issues one automatically, acm uses one from AWS Certificate Manager"`
	ARN  string `json:"arn,omitempty" jsonschema_description:"ARN of the ACM certificate"`
}
