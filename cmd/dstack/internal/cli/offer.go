package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers/offers"
)

type offerArgs struct {
	spec     resources.Spec
	filter   offers.Filter
	json     bool
	limit    int
	backends []string
	regions  []string
}

const offerUsage = `offer [options]

Lists the machines of the offline catalog that match a resources spec,
cheapest first. Prices are list prices in USD per hour at the time the
catalog was written, for planning; backends replace them with live offers.

The specs use the grammar of the resources block, for example
--gpu H100:8, --gpu A100,H100:40GB..:1..2, --cpu x86:16..,
--memory 64GB.. and --disk 200GB.. (a range, or one size). Specs not given take dstack's defaults (cpu 2..,
memory 8GB.., gpu 0.., disk 100GB..).

With -json the output is an array of offers, each with the fields
backend, region, zone (omitted when empty), instance_type, cpus, arch
(x86 or arm), memory_mb, disk_mb (the largest disk the offer can have),
gpu (null, or vendor, name, memory_mb per GPU and count), spot,
price_per_hour (USD) and availability (available, unknown or
no-capacity). Sizes are in binary megabytes (1GB is 1024MB).

Exit status: 0 (also when nothing matches), 1 invalid flags or specs.`

func runOffer(argv []string, s Streams, _ Env) int {
	a, code, ok := parseOfferArgs(argv, s)
	if !ok {
		return code
	}
	all, err := offers.Catalog()
	if err != nil {
		fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
		return ExitInvalid
	}
	matched := offers.Match(all, a.spec, a.filter)
	shown := matched
	if a.limit > 0 && len(shown) > a.limit {
		shown = shown[:a.limit]
	}
	if a.json {
		if err := writeOffersJSON(s.Stdout, shown); err != nil {
			fmt.Fprintf(s.Stderr, "dstack: writing output: %v\n", err)
			return ExitInvalid
		}
		return ExitOK
	}
	if len(matched) == 0 {
		fmt.Fprintln(s.Stdout, "No offers match.")
		return ExitOK
	}
	writeOffersTable(s.Stdout, shown)
	if len(shown) < len(matched) {
		fmt.Fprintf(s.Stdout, "\nShowing %d of %d offers; -n 0 shows all.\n", len(shown), len(matched))
	}
	return ExitOK
}

// parseOfferArgs parses the flags. When it returns !ok it has told the
// user why (or printed the help) and the command exits with code.
func parseOfferArgs(argv []string, s Streams) (a offerArgs, code int, ok bool) {
	var gpu, cpu, memory, disk string
	var spot, onDemand bool
	fs := newFlagSet("offer", offerUsage, s)
	fs.StringVar(&gpu, "gpu", "", "gpu `SPEC` (\"H100:8\", \"A100,H100:1..2\", \"24GB..:1\")")
	fs.StringVar(&cpu, "cpu", "", "cpu `SPEC` (\"16..\", \"arm:8\")")
	fs.StringVar(&memory, "memory", "", "memory `RANGE` (\"64GB..\")")
	fs.StringVar(&disk, "disk", "", "disk `RANGE` (\"200GB..\")")
	fs.Var((*stringList)(&a.backends), "backend", "only offers of backend `NAME` (repeatable)")
	fs.Var((*stringList)(&a.regions), "region", "only offers in region `NAME` (repeatable)")
	fs.BoolVar(&spot, "spot", false, "only spot offers")
	fs.BoolVar(&onDemand, "on-demand", false, "only on-demand offers")
	fs.Float64Var(&a.filter.MaxPrice, "max-price", 0, "only offers at most `USD` per hour (0: no limit)")
	fs.BoolVar(&a.json, "json", false, "print a JSON array")
	fs.IntVar(&a.limit, "n", 20, "show at most `N` offers (0: all)")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return a, flagExit(err), false
	}
	fail := func(format string, args ...any) (offerArgs, int, bool) {
		fmt.Fprintf(s.Stderr, "dstack offer: "+format+"\n", args...)
		return a, ExitInvalid, false
	}
	if len(rest) > 0 {
		return fail("unexpected argument %q; the specs are given with flags (--gpu, --cpu, --memory, --disk)", rest[0])
	}
	if gpu != "" {
		g, err := resources.ParseGPU(gpu)
		if err != nil {
			return fail("--gpu: %v", err)
		}
		a.spec.GPU = &g
	}
	if cpu != "" {
		c, err := resources.ParseCPU(cpu)
		if err != nil {
			return fail("--cpu: %v", err)
		}
		a.spec.CPU = &c
	}
	if memory != "" {
		m, err := resources.ParseMemoryRange(memory)
		if err != nil {
			return fail("--memory: %v", err)
		}
		a.spec.Memory = &m
	}
	if disk != "" {
		d, err := resources.ParseDisk(disk)
		if err != nil {
			return fail("--disk: %v", err)
		}
		a.spec.Disk = &d
	}
	switch {
	case spot && onDemand:
		return fail("--spot and --on-demand exclude each other")
	case spot || onDemand:
		a.filter.Spot = &spot
	}
	if a.filter.MaxPrice < 0 {
		return fail("--max-price: must not be negative")
	}
	if a.limit < 0 {
		return fail("-n: must not be negative")
	}
	a.filter.Backends, a.filter.Regions = a.backends, a.regions
	return a, ExitOK, true
}

func writeOffersTable(w io.Writer, list []offers.Offer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tREGION\tINSTANCE\tGPU\tCPUS\tMEMORY\tSPOT\t$/H")
	for _, o := range list {
		gpu := "-"
		if o.GPU != nil {
			gpu = o.GPU.String()
		}
		spot := "no"
		if o.Spot {
			spot = "yes"
		}
		// Memory in whole GB and prices in cents, so the columns compare at a glance.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dGB\t%s\t%.2f\n", o.Backend, o.Region, o.InstanceType, gpu,
			o.CPUs, int64(o.Memory/resources.GB), spot, o.PricePerHour)
	}
	tw.Flush()
}

// offerJSON is the -json form of an offer; its fields are documented in
// offerUsage.
type offerJSON struct {
	Backend      string        `json:"backend"`
	Region       string        `json:"region"`
	Zone         string        `json:"zone,omitempty"`
	InstanceType string        `json:"instance_type"`
	CPUs         int           `json:"cpus"`
	Arch         string        `json:"arch"`
	MemoryMB     int64         `json:"memory_mb"`
	DiskMB       int64         `json:"disk_mb"`
	GPU          *offerGPUJSON `json:"gpu"`
	Spot         bool          `json:"spot"`
	PricePerHour float64       `json:"price_per_hour"`
	Availability string        `json:"availability"`
}

type offerGPUJSON struct {
	Vendor   string `json:"vendor"`
	Name     string `json:"name"`
	MemoryMB int64  `json:"memory_mb"`
	Count    int    `json:"count"`
}

func writeOffersJSON(w io.Writer, list []offers.Offer) error {
	out := make([]offerJSON, 0, len(list))
	for _, o := range list {
		j := offerJSON{
			Backend: o.Backend, Region: o.Region, Zone: o.Zone, InstanceType: o.InstanceType,
			CPUs: o.CPUs, Arch: o.Arch, MemoryMB: int64(o.Memory), DiskMB: int64(o.Disk),
			Spot: o.Spot, PricePerHour: o.PricePerHour, Availability: o.Availability,
		}
		if g := o.GPU; g != nil {
			j.GPU = &offerGPUJSON{Vendor: g.Vendor, Name: g.Name, MemoryMB: int64(g.MemoryMB), Count: g.Count}
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
