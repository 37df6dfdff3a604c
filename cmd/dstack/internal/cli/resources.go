package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// dstack's verbs for one kind of resource: `dstack fleet [list]`,
// `dstack fleet delete NAME` and the same for volumes and gateways. A
// list reads the state and asks the providers how each object is; a
// delete is a targeted destroy through the planner (see deleteTargets).

func runFleet(argv []string, s Streams, env Env) int {
	return resourceCommand(lang.KindFleet, argv, s, env)
}

func runVolume(argv []string, s Streams, env Env) int {
	return resourceCommand(lang.KindVolume, argv, s, env)
}

func runGateway(argv []string, s Streams, env Env) int {
	return resourceCommand(lang.KindGateway, argv, s, env)
}

func resourceCommand(kind lang.Kind, argv []string, s Streams, env Env) int {
	sub := "list"
	if len(argv) > 0 && !strings.HasPrefix(argv[0], "-") {
		sub, argv = argv[0], argv[1:]
	}
	switch sub {
	case "list":
		return listResources(kind, argv, s, env)
	case "delete":
		return deleteResource(kind, argv, s, env)
	}
	fmt.Fprintf(s.Stderr, "dstack %s: unknown subcommand %q; want list or delete\n", kind, sub)
	return ExitInvalid
}

// ResourcesFormatVersion is the version of the -json documents of
// `dstack fleet|volume|gateway list`.
const ResourcesFormatVersion = "1.0"

// resourceDoc is `dstack fleet list -json` (and volume, gateway).
type resourceDoc struct {
	FormatVersion string         `json:"format_version"`
	Workspace     string         `json:"workspace"`
	Resources     []resourceItem `json:"resources"`
}

type resourceItem struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	// UsedBy are the runs with jobs not yet ended that depend on it.
	UsedBy    []string         `json:"used_by"`
	Instances []resourceObject `json:"instances"`
}

type resourceObject struct {
	Index        int      `json:"index"`
	Status       string   `json:"status"`
	Reason       string   `json:"reason,omitempty"`
	Backend      string   `json:"backend,omitempty"`
	Region       string   `json:"region,omitempty"`
	InstanceType string   `json:"instance_type,omitempty"`
	Resources    string   `json:"resources,omitempty"` // "8xCPU, 32GB, 1xA100 (80GB)"
	Spot         bool     `json:"spot"`
	PricePerHour *float64 `json:"price_per_hour,omitempty"`
	IP           string   `json:"ip,omitempty"`
	Hostname     string   `json:"hostname,omitempty"`
	ID           string   `json:"id,omitempty"`
	// Jobs are the jobs not yet ended that run on a fleet's instance.
	Jobs []string `json:"jobs,omitempty"`
}

func listResources(kind lang.Kind, argv []string, s Streams, env Env) int {
	noun := string(kind)
	fs := newFlagSet(noun+" list", fmt.Sprintf("%s [list] [options]\n\nLists the %ss in the state with the status their providers report now.", noun, noun), s)
	verbose := fs.Bool("v", false, "more columns")
	watch := fs.Bool("w", false, "refresh every 2 seconds until interrupted")
	asJSON := fs.Bool("json", false, "print a JSON document")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(args) > 0 {
		return fail(s, fmt.Errorf("%s list takes no arguments; to delete one, run dstack %s delete NAME", noun, noun))
	}
	if *watch && *asJSON {
		return fail(s, fmt.Errorf("%s list: -json prints once; it does not go with -w", noun))
	}
	ctx, cancel := commandContext()
	defer cancel()
	for {
		snap, ws, err := readCurrent(ctx, env)
		if err != nil {
			return fail(s, err)
		}
		items := []resourceItem{}
		if snap != nil {
			set, err := providerSet(env)
			if err != nil {
				return fail(s, err)
			}
			planner.Recall(snap.State, set)
			if items, err = observeResources(ctx, snap.State, set, kind); err != nil {
				return fail(s, err)
			}
		}
		if *asJSON {
			enc := json.NewEncoder(s.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(resourceDoc{FormatVersion: ResourcesFormatVersion, Workspace: ws, Resources: items}); err != nil {
				return fail(s, err)
			}
			return ExitOK
		}
		if *watch {
			fmt.Fprint(s.Stdout, "\x1b[H\x1b[2J")
		}
		if len(items) == 0 && !*watch {
			fmt.Fprintf(s.Stdout, "No %ss in workspace %q.\n", noun, ws)
			return ExitOK
		}
		writeResources(s.Stdout, kind, items, *verbose)
		if !*watch {
			return ExitOK
		}
		select {
		case <-ctx.Done():
			return ExitOK
		case <-time.After(2 * time.Second):
		}
	}
}

func writeResources(w io.Writer, kind lang.Kind, items []resourceItem, verbose bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	head := []string{"NAME", "INSTANCE", "BACKEND", "REGION"}
	switch kind {
	case lang.KindFleet:
		head = append(head, "RESOURCES", "SPOT", "PRICE", "STATUS", "JOBS")
		if verbose {
			head = append(head, "INSTANCE TYPE", "IP", "ID")
		}
	case lang.KindGateway:
		head = append(head, "HOSTNAME", "STATUS", "USED BY")
		if verbose {
			head = append(head, "IP", "ID")
		}
	default:
		head = append(head, "STATUS", "USED BY")
		if verbose {
			head = append(head, "ID")
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, it := range items {
		usedBy := orDash(strings.Join(it.UsedBy, ","))
		if len(it.Instances) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t(no instances)\n", it.Name)
			continue
		}
		for i, o := range it.Instances {
			name := it.Name
			if i > 0 {
				name = ""
			}
			status := o.Status
			if o.Reason != "" {
				status += " (" + o.Reason + ")"
			}
			row := []string{name, strconv.Itoa(o.Index), orDash(o.Backend), orDash(o.Region)}
			switch kind {
			case lang.KindFleet:
				row = append(row, orDash(o.Resources), yesNoCell(o.Spot), priceCell(o.PricePerHour), status, orDash(strings.Join(o.Jobs, ",")))
				if verbose {
					row = append(row, orDash(o.InstanceType), orDash(o.IP), orDash(o.ID))
				}
			case lang.KindGateway:
				row = append(row, orDash(o.Hostname), status, usedBy)
				if verbose {
					row = append(row, orDash(o.IP), orDash(o.ID))
				}
			default:
				row = append(row, status, usedBy)
				if verbose {
					row = append(row, orDash(o.ID))
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
}

// observeResources describes the resources of a kind in st as their
// providers see them now, with the runs that use them.
func observeResources(ctx context.Context, st *state.State, set providers.Set, kind lang.Kind) ([]resourceItem, error) {
	active, err := activeRuns(ctx, st, set)
	if err != nil {
		return nil, err
	}
	items := []resourceItem{}
	for _, r := range st.Resources {
		a, err := lang.ParseAddress(r.Address)
		if err != nil || a.Kind != kind {
			continue
		}
		live, err := describeObjects(ctx, set, r)
		if err != nil {
			return nil, err
		}
		it := resourceItem{Address: r.Address, Name: a.Name, Type: string(kind), UsedBy: usedBy(st, r.Address, active), Instances: []resourceObject{}}
		for _, in := range r.Instances {
			o := resourceObject{Index: in.Index, Status: in.Status, Backend: in.Provider, ID: in.ProviderID,
				IP: stateAttrString(in, providers.AttrIP), Hostname: stateAttrString(in, providers.AttrHostname)}
			if obj, ok := live[in.Token]; ok {
				o.Status, o.Reason = obj.Status, obj.Reason
			} else if in.ProviderID != "" && in.Token != "" {
				o.Status = planner.StatusGone
			}
			var off offers.Offer
			if decodeStateAttr(in, planner.AttrOffer, &off) {
				o.Region, o.InstanceType, o.Spot, o.Resources = off.Region, off.InstanceType, off.Spot, offerResources(off)
				if !off.Given {
					p := off.PricePerHour
					o.PricePerHour = &p
				}
			}
			if p, ok := in.Attributes[planner.AttrPrice].(float64); ok {
				o.PricePerHour = &p
			}
			if o.Region == "" {
				o.Region = recordedSpecString(r, "region")
			}
			host := fmt.Sprintf("%s[%d]", r.Address, in.Index)
			for _, run := range slices.Sorted(maps.Keys(active)) {
				for _, j := range active[run] {
					if j.host == host {
						o.Jobs = append(o.Jobs, fmt.Sprintf("%s[%d]", run, j.index))
					}
				}
			}
			it.Instances = append(it.Instances, o)
		}
		items = append(items, it)
	}
	return items, nil
}

// activeJob is a job that has not ended, and the host address it runs on.
type activeJob struct {
	index int
	host  string
}

// activeRuns are the runs in st with jobs that have not ended, as their
// providers report them now.
func activeRuns(ctx context.Context, st *state.State, set providers.Set) (map[string][]activeJob, error) {
	out := map[string][]activeJob{}
	for _, r := range st.Resources {
		if !isRunAddress(r.Address) {
			continue
		}
		jobs, err := planner.ObserveRun(ctx, planner.WithoutAbandoned(r), set)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			if j.Finished() {
				continue
			}
			host := ""
			if in := stateInstance(st, r.Address, j.Index); in != nil {
				host = stateAttrString(in, planner.AttrHostAddress)
			}
			out[r.Address] = append(out[r.Address], activeJob{index: j.Index, host: host})
		}
	}
	return out, nil
}

// usedBy lists the active runs that use addr (see runsUsing).
func usedBy(st *state.State, addr string, active map[string][]activeJob) []string {
	out := []string{}
	for _, run := range runsUsing(st, []string{addr}) {
		if _, ok := active[run]; ok {
			out = append(out, run)
		}
	}
	return out
}

// describeObjects asks the providers about a resource's objects, keyed
// by token; a backend without a provider leaves its objects out.
func describeObjects(ctx context.Context, set providers.Set, r *state.Resource) (map[string]providers.Object, error) {
	byBackend := map[string][]string{}
	for _, in := range r.Instances {
		if in.Token != "" {
			byBackend[in.Provider] = append(byBackend[in.Provider], in.Token)
		}
	}
	out := map[string]providers.Object{}
	for _, b := range slices.Sorted(maps.Keys(byBackend)) {
		p, err := set.For(b)
		if err != nil {
			continue // shown with its recorded status
		}
		objs, err := p.Describe(ctx, byBackend[b])
		if err != nil {
			return nil, fmt.Errorf("asking %s about %s: %w", b, r.Address, err)
		}
		maps.Copy(out, objs)
	}
	return out, nil
}

func offerResources(o offers.Offer) string {
	s := fmt.Sprintf("%dxCPU, %s", o.CPUs, o.Memory)
	if o.GPU != nil && o.GPU.Count > 0 {
		s += fmt.Sprintf(", %dx%s", o.GPU.Count, o.GPU.Name)
	}
	return s
}

// recordedSpecString is a top-level string field of the configuration the state
// recorded for r.
func recordedSpecString(r *state.Resource, field string) string {
	spec, _ := r.Attributes[planner.AttrSpec].(map[string]any)
	v, _ := spec[field].(string)
	return v
}

func deleteResource(kind lang.Kind, argv []string, s Streams, env Env) int {
	noun := string(kind)
	var d deleteArgs
	fs := newFlagSet(noun+" delete", fmt.Sprintf("%s delete [options] NAME\n\nTears the %s down through the planner (locked, recorded in the state's\nhistory) after you confirm. Refused while a run uses it, unless -force, which\ntears those runs down with it. If a configuration still declares it, the next\napply makes it again.", noun, noun), s)
	d.register(fs)
	args, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(args) != 1 {
		return fail(s, fmt.Errorf("%s delete takes one %s name", noun, noun))
	}
	name := args[0]
	if a, err := lang.ParseAddress(name); err == nil {
		if a.Kind != kind {
			return fail(s, fmt.Errorf("%s is not a %s", name, noun))
		}
		name = a.Name
	}
	addr := lang.Address{Kind: kind, Name: name}.String()
	return deleteTargets(d, []string{addr}, s, env, deleteOpts{
		command:  noun + " delete",
		question: fmt.Sprintf("Delete the %s %s?", noun, name),
		missing:  func(string) error { return fmt.Errorf("%s %s does not exist in the state", capitalize(noun), name) },
		done:     fmt.Sprintf("%s %s deleted", capitalize(noun), name),
	})
}
