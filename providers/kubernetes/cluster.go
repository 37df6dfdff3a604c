// Package kubernetes is the kubernetes backend: runs as pods on the nodes
// of a cluster a team already has. Offers are the nodes, each with what
// is left of its allocatable CPU, memory and GPUs once the pods on it
// are counted; a job is a pod bound to the node its offer names; a
// volume is a PersistentVolumeClaim.
//
// The package links no Kubernetes client: it speaks to a [Cluster], which
// dstack-provider-kubernetes serves over a pipe with client-go (see
// docs/design.md, "How providers and backends are linked"; the client is
// in package kubeapi).
package kubernetes

import "context"

// Backend is the backend's name in configurations.
const Backend = "kubernetes"

// Labels and annotations put on what the backend makes.
const (
	LabelManaged = "dstack.ai/managed"
	LabelToken   = "dstack.ai/token"
	// LabelAddress is the address made a label value (brackets become
	// dashes); AnnotationAddress keeps it as it is.
	LabelAddress      = "dstack.ai/address"
	AnnotationAddress = "dstack.ai/address"
	// LabelVolume names the dstack volume a claim serves.
	LabelVolume = "dstack.ai/volume"
)

// Cluster is what the provider asks of a cluster. Every call is one or a
// few API requests; the provider holds no cache of its own.
type Cluster interface {
	// Nodes lists the nodes with what is free on each.
	Nodes(ctx context.Context) ([]Node, error)
	// CreateJob makes a job's pod (and its Secret), idempotently by name:
	// a pod of that name and token that exists is returned as it is.
	CreateJob(ctx context.Context, req JobRequest) (Job, error)
	// Jobs finds the pods labelled with tokens.
	Jobs(ctx context.Context, tokens []string) ([]Job, error)
	// DeleteJob deletes a pod, its Secret and its Service, with a grace
	// period (nil: the pod's own); one that is gone is no error.
	DeleteJob(ctx context.Context, name string, graceSeconds *int64) error
	// Logs returns a pod's output from byte offset since, and whether the
	// pod has ended (no more will come).
	Logs(ctx context.Context, name string, since int64) (LogChunk, error)
	// CreateVolume makes a PersistentVolumeClaim, or finds an existing
	// one (ClaimName), idempotently by name.
	CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error)
	// Volumes finds the claims labelled with tokens.
	Volumes(ctx context.Context, tokens []string) ([]Volume, error)
	// DeleteVolume deletes a claim dstack made (a registered one loses
	// dstack's labels and stays); one that is gone is no error.
	DeleteVolume(ctx context.Context, name string) error
}

// Node is a schedulable node and what is free on it: allocatable less
// the requests of the pods bound to it that have not ended.
type Node struct {
	Name     string `json:"name"`
	Zone     string `json:"zone,omitempty"`
	Arch     string `json:"arch,omitempty"` // x86 or arm
	Ready    bool   `json:"ready"`
	CPUMilli int64  `json:"cpu_milli"`
	MemoryMB int64  `json:"memory_mb"`
	DiskMB   int64  `json:"disk_mb,omitempty"`
	// GPUs free, of GPUVendor ("nvidia", "amd") and model GPUName (from
	// the node's labels); GPUMemoryMB is one GPU's memory when labelled.
	GPUs        int    `json:"gpus,omitempty"`
	GPUVendor   string `json:"gpu_vendor,omitempty"`
	GPUName     string `json:"gpu_name,omitempty"`
	GPUMemoryMB int    `json:"gpu_memory_mb,omitempty"`
	// Total allocatable, for messages.
	AllocCPUMilli int64 `json:"alloc_cpu_milli"`
	AllocMemoryMB int64 `json:"alloc_memory_mb"`
	AllocGPUs     int   `json:"alloc_gpus,omitempty"`
}

// JobRequest is one job's pod.
type JobRequest struct {
	Name    string `json:"name"`
	Token   string `json:"token"`
	Address string `json:"address"`
	Node    string `json:"node"`
	Image   string `json:"image"`
	// Command runs as the container's command (the run's shell and
	// script, or its entrypoint).
	Command    []string `json:"command,omitempty"`
	Args       []string `json:"args,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	// Env is set in the pod spec (dstack's own DSTACK_* variables);
	// SecretEnv goes into a Secret of the pod's name that the container
	// reads with envFrom, so no value of the run's env is in the pod spec.
	Env       map[string]string `json:"env,omitempty"`
	SecretEnv map[string]string `json:"secret_env,omitempty"`
	CPUMilli  int64             `json:"cpu_milli,omitempty"`
	MemoryMB  int64             `json:"memory_mb,omitempty"`
	GPUs      int               `json:"gpus,omitempty"`
	GPUVendor string            `json:"gpu_vendor,omitempty"`
	ShmMB     int64             `json:"shm_mb,omitempty"`
	Ports     []int             `json:"ports,omitempty"`
	Volumes   []JobVolume       `json:"volumes,omitempty"`
	// GraceSeconds is the pod's termination grace period (stop_duration).
	GraceSeconds *int64 `json:"grace_seconds,omitempty"`
}

// JobVolume mounts the claim of the dstack volume named Volume at Path:
// the claim labelled LabelVolume=Volume (one dstack made, or an existing
// one it registered).
type JobVolume struct {
	Volume string `json:"volume"`
	Path   string `json:"path"`
}

// Job is a pod as the provider sees it.
type Job struct {
	Name    string `json:"name"`
	Token   string `json:"token"`
	Address string `json:"address"`
	Node    string `json:"node"`
	// Phase is the pod's phase: Pending, Running, Succeeded, Failed.
	Phase    string `json:"phase"`
	Deleting bool   `json:"deleting,omitempty"`
	Reason   string `json:"reason,omitempty"`
	IP       string `json:"ip,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// LogChunk is a piece of a pod's output.
type LogChunk struct {
	Data  []byte `json:"data,omitempty"`
	Ended bool   `json:"ended"`
}

// VolumeRequest is one volume's claim: a new one, ClaimName(Name), or
// the existing ClaimName, labelled as the volume's.
type VolumeRequest struct {
	// Name is the dstack volume's name.
	Name             string   `json:"name"`
	Token            string   `json:"token"`
	Address          string   `json:"address"`
	ClaimName        string   `json:"claim_name,omitempty"`
	SizeMB           int64    `json:"size_mb,omitempty"`
	StorageClassName string   `json:"storage_class_name,omitempty"`
	AccessModes      []string `json:"access_modes,omitempty"`
}

// Volume is a claim.
type Volume struct {
	// Name is the claim's name.
	Name    string `json:"name"`
	Token   string `json:"token"`
	Address string `json:"address"`
	Phase   string `json:"phase"`
	SizeMB  int64  `json:"size_mb,omitempty"`
	// Registered: a claim dstack did not make (claim_name); it is never
	// deleted.
	Registered bool `json:"registered,omitempty"`
}
