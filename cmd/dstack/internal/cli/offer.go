package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/planner/render"
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

With --backend naming a configured backend that reads its account (aws),
that backend's offers are its account's, as plan sees them: the instance
types the account can launch in each zone of the configured regions, with
the current spot and on-demand prices (cached for an hour; the list says
how old they are, and -json gives each offer's priced_at). When the account
cannot be read, the catalog's offers stand in.

Exit status: 0 (also when nothing matches), 1 invalid flags or specs.`

func runOffer(argv []string, s Streams, env Env) int {
	a, code, ok := parseOfferArgs(argv, s)
	if !ok {
		return code
	}
	all, err := offers.Catalog()
	if err != nil {
		fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
		return ExitInvalid
	}
	var notes []string
	if all, notes, err = withLiveOffers(all, a.backends, env); err != nil {
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
	for _, line := range offerAges(shown, time.Now()) {
		fmt.Fprintln(s.Stdout, line)
	}
	for _, line := range notes {
		fmt.Fprintln(s.Stdout, "\n"+line)
	}
	return ExitOK
}

// accountBackends are the backends whose provider reads the offers of the
// account it is configured with.
var accountBackends = []string{"aws"}

// withLiveOffers replaces the catalog's offers of the account backends
// named in backends, when they are configured, with their providers'; a
// note says so of a backend whose account could not be read (its provider
// gave the catalog's).
func withLiveOffers(all []offers.Offer, backends []string, env Env) ([]offers.Offer, []string, error) {
	var live []string
	for _, b := range backends {
		if slices.Contains(accountBackends, strings.ToLower(b)) {
			live = append(live, strings.ToLower(b))
		}
	}
	if len(live) == 0 {
		return all, nil, nil
	}
	cfg, err := readBackendConfig(env)
	if err != nil {
		return nil, nil, err
	}
	set, err := providerSet(env)
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for _, b := range live {
		if _, ok := cfg[b]; !ok {
			continue // not configured: the catalog's
		}
		p, err := set.For(b)
		if err != nil {
			return nil, nil, err
		}
		mine, err := p.Offers(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("listing the offers of the %s backend: %w", b, err)
		}
		if !slices.ContainsFunc(mine, func(o offers.Offer) bool { return !o.PricedAt.IsZero() }) {
			notes = append(notes, fmt.Sprintf("Offers of %s are the catalog's: the account's could not be read "+
				"(check the backend's credentials, and that dstack-provider-%s is on PATH).", b, b))
		}
		all = slices.DeleteFunc(all, func(o offers.Offer) bool { return strings.EqualFold(o.Backend, b) })
		all = append(all, mine...)
	}
	return all, notes, nil
}

// offerAges says, per backend, how old the account offers among list are.
func offerAges(list []offers.Offer, now time.Time) []string {
	oldest := map[string]time.Time{}
	for _, o := range list {
		if o.PricedAt.IsZero() {
			continue
		}
		if t, ok := oldest[o.Backend]; !ok || o.PricedAt.Before(t) {
			oldest[o.Backend] = o.PricedAt
		}
	}
	var out []string
	for _, b := range slices.Sorted(maps.Keys(oldest)) {
		out = append(out, fmt.Sprintf("\nOffers of %s were read from the account %s.", b, render.Age(now.Sub(oldest[b]))))
	}
	return out
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
		// An account's offer is for one zone, which names its region.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dGB\t%s\t%.2f\n", o.Backend, cmp.Or(o.Zone, o.Region), o.InstanceType, gpu,
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
	// PricedAt is when an account's offer was read (absent for the
	// catalog's).
	PricedAt time.Time `json:"priced_at,omitzero"`
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
			Spot: o.Spot, PricePerHour: o.PricePerHour, Availability: o.Availability, PricedAt: o.PricedAt,
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
