package resources

import (
	"errors"
	"fmt"
	"strings"
)

// Disk is a disk spec: a size range, written "100GB" or "100GB..".
type Disk struct {
	Size MemoryRange `json:"size" jsonschema:"required" jsonschema_description:"Disk size, or a range"`
}

// ParseDisk parses a disk spec.
func ParseDisk(s string) (Disk, error) {
	d, f := parseDisk(s)
	if f != nil {
		return Disk{}, f.err("disk spec", s)
	}
	return d, nil
}

func parseDisk(s string) (Disk, *fault) {
	r, f := parseMemoryRange(s)
	return Disk{r}, f
}

// String formats the size range.
func (d Disk) String() string { return d.Size.String() }

// Validate checks a Disk built other than by ParseDisk.
func (d Disk) Validate() error { return validateMemory("size", &d.Size) }

// MarshalText implements [encoding.TextMarshaler].
func (d Disk) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (d *Disk) UnmarshalText(b []byte) error {
	v, err := ParseDisk(string(b))
	if err == nil {
		*d = v
	}
	return err
}

// diskObject is Disk without its methods: the mapping form.
type diskObject Disk

// MarshalJSON writes the string form when it reads back as d, else an
// object.
func (d Disk) MarshalJSON() ([]byte, error) {
	return marshalForm(func() (string, bool) { return textForm(d, parseDisk) }, diskObject(d))
}

// UnmarshalJSON accepts a string, a number (of gigabytes) or an object.
func (d *Disk) UnmarshalJSON(b []byte) error {
	var obj diskObject
	return unmarshalForm(b, d, &obj, func() error {
		*d = Disk(obj)
		return d.Validate()
	})
}

// DescribeType names the accepted forms in decoding errors.
func (Disk) DescribeType() string { return `a disk size ("100GB", "100GB..") or a mapping` }

// Spec is a whole `resources:` block.
type Spec struct {
	CPU          *CPU         `json:"cpu,omitempty" jsonschema_description:"CPU cores: a count or range, optionally with an architecture (4, 2.., arm:8)"`
	Memory       *MemoryRange `json:"memory,omitempty" jsonschema_description:"RAM: a size or range (8GB, 16GB..)"`
	SharedMemory *Memory      `json:"shm_size,omitempty" jsonschema_description:"Size of shared memory (/dev/shm) in the container"`
	GPU          *GPU         `json:"gpu,omitempty" jsonschema_description:"GPUs: vendor, names, memory and count (H100:8, 24GB..:2, A100,H100:1..)"`
	Disk         *Disk        `json:"disk,omitempty" jsonschema_description:"Disk size: a size or range (100GB..)"`
}

// Default returns dstack's defaults: cpu "2..", memory "8GB..", gpu "0..",
// disk "100GB.." and no shm_size.
func Default() Spec {
	return Spec{
		CPU:    &CPU{Count: IntRange{Min: new(2)}},
		Memory: &MemoryRange{Min: new(8 * GB)},
		GPU:    &GPU{Count: IntRange{Min: new(0)}},
		Disk:   &Disk{MemoryRange{Min: new(100 * GB)}},
	}
}

// WithDefaults fills every nil field of s from Default and returns the
// result.
func (s Spec) WithDefaults() Spec {
	d := Default()
	if s.CPU == nil {
		s.CPU = d.CPU
	}
	if s.Memory == nil {
		s.Memory = d.Memory
	}
	if s.SharedMemory == nil {
		s.SharedMemory = d.SharedMemory
	}
	if s.GPU == nil {
		s.GPU = d.GPU
	}
	if s.Disk == nil {
		s.Disk = d.Disk
	}
	return s
}

// Validate checks a Spec whose fields were decoded from mappings.
func (s Spec) Validate() error {
	if s.CPU != nil {
		if err := s.CPU.Validate(); err != nil {
			return fmt.Errorf("cpu: %w", err)
		}
	}
	if err := validateMemory("memory", s.Memory); err != nil {
		return err
	}
	if s.SharedMemory != nil && *s.SharedMemory < 0 {
		return errors.New("shm_size: must not be negative")
	}
	if s.GPU != nil {
		if err := s.GPU.Validate(); err != nil {
			return fmt.Errorf("gpu: %w", err)
		}
	}
	if s.Disk != nil {
		if err := s.Disk.Validate(); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	return nil
}

func validateMemory(field string, r *MemoryRange) error {
	if r == nil {
		return nil
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// String formats the fields that are set, in the order cpu, memory,
// shm_size, gpu, disk: "cpu=4.. memory=16GB.. gpu=H100:8".
func (s Spec) String() string {
	var parts []string
	if s.CPU != nil {
		parts = append(parts, "cpu="+s.CPU.String())
	}
	if s.Memory != nil {
		parts = append(parts, "memory="+s.Memory.String())
	}
	if s.SharedMemory != nil {
		parts = append(parts, "shm_size="+s.SharedMemory.String())
	}
	if s.GPU != nil {
		parts = append(parts, "gpu="+s.GPU.String())
	}
	if s.Disk != nil {
		parts = append(parts, "disk="+s.Disk.String())
	}
	return strings.Join(parts, " ")
}
