package offers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/lang/resources"
)

// GPU is the accelerators of an offer: Count of one model.
type GPU struct {
	Vendor   string           `json:"vendor"` // lower case: nvidia, amd, google, intel, tenstorrent
	Name     string           `json:"name"`   // "H100", "v5litepod-8"
	MemoryMB resources.Memory `json:"memory"` // memory of one accelerator
	Count    int              `json:"count"`
}

// String formats g as "8xH100 (80GB)".
func (g GPU) String() string {
	return fmt.Sprintf("%dx%s (%s)", g.Count, g.Name, g.MemoryMB)
}

// Offer is a machine that can be rented: one instance type in one region
// of one backend, at a price.
type Offer struct {
	Backend      string           `json:"backend"`
	Region       string           `json:"region"`
	Zone         string           `json:"zone,omitempty"` // empty when the offer is for any zone of the region
	InstanceType string           `json:"instance_type"`
	CPUs         int              `json:"cpus"`
	Arch         string           `json:"arch"` // x86 or arm
	Memory       resources.Memory `json:"memory"`
	Disk         resources.Memory `json:"disk"`          // the largest disk the offer can have
	GPU          *GPU             `json:"gpu,omitempty"` // nil for a CPU-only machine
	Spot         bool             `json:"spot"`
	PricePerHour float64          `json:"price_per_hour"`         // USD
	Availability string           `json:"availability,omitempty"` // available, unknown or no-capacity
	// Given is a machine that exists and is given by its address (an SSH
	// fleet's host), not one a provider makes: what it has is read from
	// it when it joins, and it costs nothing.
	Given bool `json:"given,omitempty"`
	// PricedAt is when the offer and its price were read from the
	// backend's account (a live offer, perhaps from a cache); zero for
	// the catalog's list prices.
	PricedAt time.Time `json:"priced_at,omitzero"`
	// Divisible is a machine that runs many jobs side by side, each
	// given a part of it (a Kubernetes node): what it offers is what is
	// free on it, and a spec fits when that reaches the lower bound of
	// each of the spec's ranges (its upper bounds cut the offer down to
	// them rather than rule it out).
	Divisible bool `json:"divisible,omitempty"`
}

// Availabilities of an offer.
const (
	Available  = "available"
	Unknown    = "unknown"
	NoCapacity = "no-capacity"
)

// Filter narrows offers beyond the resources spec. Its zero value lets
// every offer through.
type Filter struct {
	Backends []string // any of these backends (case-insensitive); none: all
	Regions  []string // any of these regions (case-insensitive); none: all
	Spot     *bool    // only spot (true) or on-demand (false); nil: both
	MaxPrice float64  // the highest price per hour; 0: no limit
}

func (f Filter) allows(o Offer) bool {
	switch {
	case len(f.Backends) > 0 && !containsFold(f.Backends, o.Backend),
		len(f.Regions) > 0 && !containsFold(f.Regions, o.Region),
		f.Spot != nil && *f.Spot != o.Spot,
		f.MaxPrice > 0 && o.PricePerHour > f.MaxPrice:
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// Match returns the offers in all that fit spec, after filling in its
// defaults (see [resources.Spec.WithDefaults]), and that f lets through,
// cheapest first; offers at the same price are ordered by backend, region,
// zone, instance type and on-demand before spot. all is not modified.
//
// An offer fits when its vCPUs, architecture (if the spec names one) and
// memory are in the spec's ranges, its disk can hold the smallest disk the
// spec allows (the disk's upper bound does not matter: the disk is made
// that small), and its accelerators fit the gpu spec: their count, and,
// when it has any, their vendor, name (any of the spec's names,
// case-insensitive, "tpu-" prefix ignored), memory per accelerator and
// memory of all together. A CPU-only offer fits when the gpu count range
// includes 0. The compute capability of a gpu spec is not checked, as the
// catalog does not record it.
func Match(all []Offer, spec resources.Spec, f Filter) []Offer {
	spec = spec.WithDefaults()
	vendor := ""
	if spec.GPU != nil {
		vendor = spec.GPU.EffectiveVendor()
	}
	// The offers that fit are found by index first, so that the result
	// (offers are large, and a cluster lists one per node) is allocated
	// once at its size instead of grown by copying.
	var idx []int32
	for i := range all {
		if f.allows(all[i]) && fits(all[i], spec, vendor) {
			idx = append(idx, int32(i))
		}
	}
	var out []Offer
	if len(idx) > 0 {
		out = make([]Offer, len(idx))
		for k, i := range idx {
			out[k] = all[i]
		}
	}
	// Offers listed in order (a cluster's nodes) need no sort.
	if !slices.IsSortedFunc(out, compare) {
		slices.SortStableFunc(out, compare)
	}
	return out
}

func compare(a, b Offer) int {
	return cmp.Or(
		cmp.Compare(a.PricePerHour, b.PricePerHour),
		cmp.Compare(a.Backend, b.Backend),
		cmp.Compare(a.Region, b.Region),
		cmp.Compare(a.Zone, b.Zone),
		cmp.Compare(a.InstanceType, b.InstanceType),
		compareBool(a.Spot, b.Spot),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// Explain returns the first reason why o does not fit spec (after its
// defaults are filled in), such as "gpu: needs H100:8, offer has A100:8",
// or "" when it fits. The checks are those of [Match], in the order cpu,
// memory, disk, gpu.
func Explain(o Offer, spec resources.Spec) string {
	return mismatch(o, spec.WithDefaults())
}

// fits reports whether o fits spec (with its defaults filled in), whose
// gpu's effective vendor is vendor: the checks of mismatch, without the
// words.
func fits(o Offer, spec resources.Spec, vendor string) bool {
	if o.Divisible {
		o = cutDown(o, spec)
	}
	if c := spec.CPU; c != nil && (!inInt(c.Count, o.CPUs) || c.Arch != "" && !strings.EqualFold(c.Arch, o.Arch)) {
		return false
	}
	if m := spec.Memory; m != nil && !inMemory(*m, o.Memory) {
		return false
	}
	if d := spec.Disk; d != nil && d.Size.Min != nil && *d.Size.Min > o.Disk {
		return false
	}
	if g := spec.GPU; g != nil && !gpuFits(*g, vendor, o.GPU) {
		return false
	}
	return true
}

// mismatch is Explain for a spec with its defaults filled in.
func mismatch(o Offer, spec resources.Spec) string {
	if o.Divisible {
		o = cutDown(o, spec)
	}
	if c := spec.CPU; c != nil {
		if !inInt(c.Count, o.CPUs) || c.Arch != "" && !strings.EqualFold(c.Arch, o.Arch) {
			return fmt.Sprintf("cpu: needs %s, offer has %s:%d", c, o.Arch, o.CPUs)
		}
	}
	if m := spec.Memory; m != nil && !inMemory(*m, o.Memory) {
		return fmt.Sprintf("memory: needs %s, offer has %s", m, o.Memory)
	}
	if d := spec.Disk; d != nil && d.Size.Min != nil && *d.Size.Min > o.Disk {
		return fmt.Sprintf("disk: needs %s, offer allows up to %s", d, o.Disk)
	}
	if g := spec.GPU; g != nil && !gpuFits(*g, g.EffectiveVendor(), o.GPU) {
		has := "none"
		if o.GPU != nil {
			has = fmt.Sprintf("%s:%s:%d", o.GPU.Name, o.GPU.MemoryMB, o.GPU.Count)
		}
		return fmt.Sprintf("gpu: needs %s, offer has %s", g, has)
	}
	return ""
}

func gpuFits(g resources.GPU, vendor string, have *GPU) bool {
	if have == nil {
		return inInt(g.Count, 0)
	}
	if !inInt(g.Count, have.Count) {
		return false
	}
	if vendor != "" && !strings.EqualFold(vendor, have.Vendor) {
		return false
	}
	if len(g.Names) > 0 && !slices.ContainsFunc(g.Names, func(n string) bool { return sameName(n, have.Name) }) {
		return false
	}
	if g.Memory != nil && !inMemory(*g.Memory, have.MemoryMB) {
		return false
	}
	if g.TotalMemory != nil && !inMemory(*g.TotalMemory, have.MemoryMB*resources.Memory(have.Count)) {
		return false
	}
	return true
}

// sameName compares gpu names case-insensitively, ignoring a "tpu-" prefix.
func sameName(a, b string) bool {
	return strings.EqualFold(trimTPU(a), trimTPU(b))
}

// trimTPU drops a "tpu-" prefix of any case, without allocating.
func trimTPU(s string) string {
	if len(s) >= 4 && strings.EqualFold(s[:4], "tpu-") {
		return s[4:]
	}
	return s
}

func inInt(r resources.IntRange, n int) bool {
	return (r.Min == nil || *r.Min <= n) && (r.Max == nil || n <= *r.Max)
}

func inMemory(r resources.MemoryRange, m resources.Memory) bool {
	return (r.Min == nil || *r.Min <= m) && (r.Max == nil || m <= *r.Max)
}

// cutDown is the part of a divisible offer that spec's upper bounds
// allow: its CPUs, memory and GPUs, each at most the spec's maximum.
func cutDown(o Offer, spec resources.Spec) Offer {
	if c := spec.CPU; c != nil && c.Count.Max != nil && o.CPUs > *c.Count.Max {
		o.CPUs = *c.Count.Max
	}
	if m := spec.Memory; m != nil && m.Max != nil && o.Memory > *m.Max {
		o.Memory = *m.Max
	}
	if g := spec.GPU; g != nil && o.GPU != nil && g.Count.Max != nil && o.GPU.Count > *g.Count.Max {
		cut := *o.GPU
		cut.Count = *g.Count.Max
		o.GPU = &cut
		if cut.Count == 0 {
			o.GPU = nil
		}
	}
	return o
}
