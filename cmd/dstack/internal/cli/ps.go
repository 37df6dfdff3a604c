package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// PSFormatVersion is the version of `ps -json`'s document. A field may
// be added within a version; none is renamed, removed or changes meaning.
const PSFormatVersion = "1.0"

// psDoc is `dstack ps -json`: the runs, each with its jobs. Documented in
// website/cli/ps.md; keep the two in step.
type psDoc struct {
	FormatVersion string  `json:"format_version"`
	Workspace     string  `json:"workspace"`
	Runs          []psRun `json:"runs"`
}

type psRun struct {
	Address string  `json:"address"` // task.train
	Name    string  `json:"name"`    // train
	Type    string  `json:"type"`    // task, service or dev-environment
	Jobs    []psJob `json:"jobs"`
}

type psJob struct {
	Index int `json:"index"` // the replica or node
	// Status is the provider's: pending, provisioning, running, done,
	// failed, stopped, terminated, or gone (no longer known to it).
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Finished bool   `json:"finished"`
	// Abandoned: left on a host that did not answer; it is not the run's.
	Abandoned bool   `json:"abandoned,omitempty"`
	Backend   string `json:"backend,omitempty"`
	Region    string `json:"region,omitempty"`
	// Host is the machine it runs on: a fleet's instance address, with an
	// SSH fleet host's name.
	Host         string       `json:"host,omitempty"`
	InstanceType string       `json:"instance_type,omitempty"`
	Spot         bool         `json:"spot"`
	Resources    *psResources `json:"resources,omitempty"`
	PricePerHour *float64     `json:"price_per_hour,omitempty"`
	Ports        []psPort     `json:"ports,omitempty"`
	ID           string       `json:"id,omitempty"` // the job's ID at its provider
	SubmittedAt  *time.Time   `json:"submitted_at,omitempty"`
}

// psResources is what the job takes of its host.
type psResources struct {
	CPUs     int `json:"cpus"`
	MemoryMB int `json:"memory_mb"`
	GPUs     int `json:"gpus"`
}

type psPort struct {
	Host      int `json:"host"`
	Container int `json:"container"`
}

func runPS(argv []string, s Streams, env Env) int {
	fs := newFlagSet("ps", "ps [options]\n\nLists the runs and their jobs with the status their providers report.\n-json prints a document whose schema is versioned (format_version) and\ndocumented in website/cli/ps.md.", s)
	all := fs.Bool("a", false, "also list finished jobs")
	watch := fs.Bool("w", false, "refresh every 2 seconds until interrupted")
	verbose := fs.Bool("v", false, "more columns: resources, instance type, region, price, submitted")
	asJSON := fs.Bool("json", false, "print the runs as a JSON document")
	if _, err := parseFlags(fs, argv); err != nil {
		return flagExit(err)
	}
	if *watch && *asJSON {
		return fail(s, fmt.Errorf("ps: -json prints once; it does not go with -w"))
	}
	ctx, cancel := commandContext()
	defer cancel()
	for {
		snap, ws, err := readCurrent(ctx, env)
		if err != nil {
			return fail(s, err)
		}
		var runs []psRun
		if snap != nil {
			set, err := providerSet(env)
			if err != nil {
				return fail(s, err)
			}
			planner.Recall(snap.State, set)
			if runs, err = psRuns(ctx, snap.State, set, *all); err != nil {
				return fail(s, err)
			}
		} else if !*asJSON {
			return fail(s, fmt.Errorf("workspace %q has no state yet: nothing has been applied", ws))
		}
		if *asJSON {
			if runs == nil {
				runs = []psRun{}
			}
			enc := json.NewEncoder(s.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(psDoc{FormatVersion: PSFormatVersion, Workspace: ws, Runs: runs}); err != nil {
				return fail(s, err)
			}
			return ExitOK
		}
		if *watch {
			fmt.Fprint(s.Stdout, "\x1b[H\x1b[2J")
		}
		writePSTable(s.Stdout, runs, *verbose, time.Now())
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

func writePSTable(w io.Writer, runs []psRun, verbose bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if verbose {
		fmt.Fprintln(tw, "RUN\tJOB\tSTATUS\tBACKEND\tREGION\tINSTANCE TYPE\tRESOURCES\tSPOT\tPRICE\tHOST\tPORTS\tSUBMITTED\tID")
	} else {
		fmt.Fprintln(tw, "RUN\tJOB\tSTATUS\tBACKEND\tHOST\tPORTS\tID")
	}
	for _, r := range runs {
		for _, j := range r.Jobs {
			status := j.Status
			if j.Reason != "" && j.Finished {
				status += " (" + j.Reason + ")"
			}
			if j.Abandoned {
				status = "abandoned, " + status // left on a host that did not answer
			}
			row := []string{r.Address, strconv.Itoa(j.Index), status, j.Backend}
			if verbose {
				row = append(row, orDash(j.Region), orDash(j.InstanceType), orDash(j.Resources.String()), yesNoCell(j.Spot), priceCell(j.PricePerHour))
			}
			row = append(row, j.Host, psPortsString(j.Ports))
			if verbose {
				row = append(row, agoCell(j.SubmittedAt, now))
			}
			row = append(row, j.ID)
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	tw.Flush()
}

// psRuns are every run's jobs, as their providers report them now
// (finished ones only with all), with what the state records of where
// each runs.
func psRuns(ctx context.Context, st *state.State, set providers.Set, all bool) ([]psRun, error) {
	jobs, err := planner.Observe(ctx, st, set)
	if err != nil {
		return nil, err
	}
	var runs []psRun
	for _, j := range jobs {
		if j.Finished() && !all {
			continue
		}
		if len(runs) == 0 || runs[len(runs)-1].Address != j.Address {
			a, _ := lang.ParseAddress(j.Address)
			runs = append(runs, psRun{Address: j.Address, Name: a.Name, Type: string(a.Kind)})
		}
		r := &runs[len(runs)-1]
		r.Jobs = append(r.Jobs, describeJob(st, j))
	}
	return runs, nil
}

// describeJob adds to what the provider said of a job what the state
// records: the offer of the machine it runs on, what it takes of it,
// when it was made.
func describeJob(st *state.State, j planner.Job) psJob {
	pj := psJob{Index: j.Index, Status: j.Status, Reason: j.Reason, Finished: j.Finished(), Abandoned: j.Abandoned,
		Backend: j.Backend, Host: j.Host, Ports: parsePSPorts(j.Ports), ID: j.Provider}
	in := stateInstance(st, j.Address, j.Index)
	if in == nil {
		return pj
	}
	var d planner.Demand
	if decodeStateAttr(in, planner.AttrDemand, &d) {
		pj.Resources = &psResources{CPUs: d.CPUs, MemoryMB: d.MemoryMB, GPUs: d.GPUs}
	}
	if at, err := time.Parse(time.RFC3339, stateAttrString(in, planner.AttrCreatedAt)); err == nil {
		pj.SubmittedAt = &at
	}
	var o offers.Offer
	found := decodeStateAttr(in, planner.AttrOffer, &o)
	if !found {
		if host := jobHostInstance(st, stateAttrString(in, planner.AttrHostAddress)); host != nil {
			found = decodeStateAttr(host, planner.AttrOffer, &o)
		}
	}
	if found {
		pj.Region, pj.InstanceType, pj.Spot = o.Region, o.InstanceType, o.Spot
		if !o.Given {
			p := o.PricePerHour
			pj.PricePerHour = &p
		}
	}
	if p, ok := in.Attributes[planner.AttrPrice].(float64); ok {
		pj.PricePerHour = &p
	}
	return pj
}

func stateInstance(st *state.State, addr string, index int) *state.Instance {
	r := st.Resource(addr)
	if r == nil {
		return nil
	}
	for _, in := range r.Instances {
		if in.Index == index {
			return in
		}
	}
	return nil
}

// jobHostInstance finds a job's host from its recorded address,
// "fleet.gpus[0]".
func jobHostInstance(st *state.State, hostAddr string) *state.Instance {
	addr, idx, ok := strings.Cut(strings.TrimSuffix(hostAddr, "]"), "[")
	if !ok {
		return nil
	}
	i, err := strconv.Atoi(idx)
	if err != nil {
		return nil
	}
	return stateInstance(st, addr, i)
}

// decodeStateAttr decodes an instance attribute (a JSON object in the state)
// into v, reporting whether there was one.
func decodeStateAttr(in *state.Instance, key string, v any) bool {
	raw, ok := in.Attributes[key]
	if !ok {
		return false
	}
	b, err := json.Marshal(raw)
	return err == nil && json.Unmarshal(b, v) == nil
}

func stateAttrString(in *state.Instance, key string) string {
	s, _ := in.Attributes[key].(string)
	return s
}

// parsePSPorts parses "HOST:CONTAINER,..." as providers record them.
func parsePSPorts(s string) []psPort {
	var out []psPort
	for _, p := range strings.Split(s, ",") {
		h, c, ok := strings.Cut(strings.TrimSpace(p), ":")
		if !ok {
			continue
		}
		hp, err1 := strconv.Atoi(h)
		cp, err2 := strconv.Atoi(c)
		if err1 == nil && err2 == nil {
			out = append(out, psPort{Host: hp, Container: cp})
		}
	}
	return out
}

func psPortsString(ps []psPort) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%d:%d", p.Host, p.Container))
	}
	return strings.Join(parts, ",")
}

func (r *psResources) String() string {
	if r == nil {
		return ""
	}
	s := fmt.Sprintf("%dxCPU, %s", r.CPUs, memoryCell(r.MemoryMB))
	if r.GPUs > 0 {
		s += fmt.Sprintf(", %dxGPU", r.GPUs)
	}
	return s
}

func memoryCell(mb int) string {
	if mb >= 1024 && mb%1024 == 0 {
		return fmt.Sprintf("%dGB", mb/1024)
	}
	return fmt.Sprintf("%dMB", mb)
}

func priceCell(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("$%.4g", *p)
}

func yesNoCell(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// agoCell says how long ago t was, as dstack's tables do ("3 mins ago").
func agoCell(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		n := int(d / time.Minute)
		return fmt.Sprintf("%d %s ago", n, plural(n, "min"))
	case d < 24*time.Hour:
		n := int(d / time.Hour)
		return fmt.Sprintf("%d %s ago", n, plural(n, "hour"))
	}
	return t.UTC().Format("2006-01-02 15:04")
}
