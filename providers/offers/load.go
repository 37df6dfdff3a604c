package offers

import (
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
)

//go:embed catalog.csv
var catalogCSV string

// Catalog returns the offers of the embedded catalog, in file order; see
// the package documentation for its format and what its prices mean.
func Catalog() ([]Offer, error) {
	all, err := Load(strings.NewReader(catalogCSV))
	if err != nil {
		return nil, fmt.Errorf("embedded catalog: %w", err)
	}
	return all, nil
}

// columns are the catalog's columns, in order.
var columns = []string{
	"backend", "region", "instance_type", "cpus", "arch", "memory_gb", "disk_gb",
	"gpu_vendor", "gpu_name", "gpu_memory_gb", "gpu_count", "spot", "price_per_hour",
}

// Column indexes.
const (
	colBackend = iota
	colRegion
	colInstanceType
	colCPUs
	colArch
	colMemory
	colDisk
	colGPUVendor
	colGPUName
	colGPUMemory
	colGPUCount
	colSpot
	colPrice
)

// LoadError is a problem in a catalog: where it is and what is wrong.
type LoadError struct {
	Line   int    // 1-based line of the file
	Column string // the column's name, "" when the whole line is at fault
	Err    error
}

// Error formats e as `line 5, column gpu_count: ...`.
func (e *LoadError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d, column %s: %v", e.Line, e.Column, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Load reads a catalog in the format of the embedded one (see the package
// documentation) and returns its offers in file order, each with
// Availability "unknown". It stops at the first problem.
func Load(r io.Reader) ([]Offer, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(columns)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, readError(err)
	}
	for i, name := range header {
		if strings.TrimSpace(name) != columns[i] {
			return nil, &LoadError{Line: 1, Column: columns[i], Err: fmt.Errorf("header is %q, want %q", name, columns[i])}
		}
	}
	var offers []Offer
	seen := map[string]int{} // backend, region, instance type and spot: line
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return offers, nil
		}
		if err != nil {
			return nil, readError(err)
		}
		line, _ := cr.FieldPos(0)
		o, col, err := parseRow(rec)
		if err != nil {
			return nil, &LoadError{Line: line, Column: columns[col], Err: err}
		}
		key := fmt.Sprintf("%s\x00%s\x00%s\x00%t", o.Backend, o.Region, o.InstanceType, o.Spot)
		if first, ok := seen[key]; ok {
			return nil, &LoadError{Line: line, Err: fmt.Errorf("duplicate of line %d (same backend, region, instance_type and spot)", first)}
		}
		seen[key] = line
		offers = append(offers, o)
	}
}

func readError(err error) error {
	if err == io.EOF {
		return &LoadError{Line: 1, Err: errors.New("empty catalog: want a header row")}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return &LoadError{Line: pe.Line, Err: fmt.Errorf("want %d columns: %w", len(columns), pe.Err)}
		}
		return &LoadError{Line: pe.Line, Err: fmt.Errorf("at character %d: %w", pe.Column, pe.Err)}
	}
	return fmt.Errorf("reading catalog: %w", err)
}

// parseRow parses one record; on failure it returns the column at fault.
func parseRow(rec []string) (Offer, int, error) {
	f := func(i int) string { return strings.TrimSpace(rec[i]) }
	o := Offer{
		Backend:      f(colBackend),
		Region:       f(colRegion),
		InstanceType: f(colInstanceType),
		Arch:         f(colArch),
		Availability: Unknown,
	}
	for _, i := range []int{colBackend, colRegion, colInstanceType} {
		if f(i) == "" {
			return o, i, errors.New("empty")
		}
	}
	var err error
	if o.CPUs, err = positiveInt(f(colCPUs)); err != nil {
		return o, colCPUs, err
	}
	if o.Arch != "x86" && o.Arch != "arm" {
		return o, colArch, fmt.Errorf("%q is not x86 or arm", o.Arch)
	}
	if o.Memory, err = gigabytes(f(colMemory)); err != nil {
		return o, colMemory, err
	}
	if o.Disk, err = gigabytes(f(colDisk)); err != nil {
		return o, colDisk, err
	}
	if o.Spot, err = strconv.ParseBool(f(colSpot)); err != nil || f(colSpot) != strconv.FormatBool(o.Spot) {
		return o, colSpot, fmt.Errorf("%q is not true or false", f(colSpot))
	}
	if o.PricePerHour, err = strconv.ParseFloat(f(colPrice), 64); err != nil || o.PricePerHour < 0 || math.IsInf(o.PricePerHour, 0) || math.IsNaN(o.PricePerHour) {
		return o, colPrice, fmt.Errorf("%q is not a price (a non-negative number)", f(colPrice))
	}
	gpuCols := []int{colGPUVendor, colGPUName, colGPUMemory, colGPUCount}
	empty := 0
	for _, i := range gpuCols {
		if f(i) == "" {
			empty++
		}
	}
	switch empty {
	case len(gpuCols): // CPU-only
		return o, 0, nil
	case 0:
	default:
		for _, i := range gpuCols {
			if f(i) == "" {
				return o, i, errors.New("empty, but other gpu columns are not (leave all four empty for a CPU-only machine)")
			}
		}
	}
	g := &GPU{Vendor: f(colGPUVendor), Name: f(colGPUName)}
	switch g.Vendor {
	case "nvidia", "amd", "google", "intel", "tenstorrent":
	default:
		return o, colGPUVendor, fmt.Errorf("unknown vendor %q (want nvidia, amd, google, intel or tenstorrent)", g.Vendor)
	}
	if g.MemoryMB, err = gigabytes(f(colGPUMemory)); err != nil {
		return o, colGPUMemory, err
	}
	if g.Count, err = positiveInt(f(colGPUCount)); err != nil {
		return o, colGPUCount, err
	}
	o.GPU = g
	return o, 0, nil
}

func positiveInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return n, nil
}

// gigabytes parses a positive number of gigabytes that comes to whole
// megabytes.
func gigabytes(s string) (resources.Memory, error) {
	f, err := strconv.ParseFloat(s, 64)
	mb := f * float64(resources.GB)
	if err != nil || f <= 0 || mb > math.MaxInt64/2 || mb != math.Trunc(mb) {
		return 0, fmt.Errorf("%q is not a size in gigabytes (a positive number of whole megabytes)", s)
	}
	return resources.Memory(mb), nil
}
