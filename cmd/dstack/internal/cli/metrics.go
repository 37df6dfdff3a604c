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

	"golang.org/x/sync/errgroup"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// MetricsFormatVersion is the version of `metrics -json`'s document.
const MetricsFormatVersion = "1.0"

// metricsDoc is `dstack metrics RUN -json`.
type metricsDoc struct {
	FormatVersion string       `json:"format_version"`
	Run           string       `json:"run"`
	Jobs          []jobMetrics `json:"jobs"`
}

type jobMetrics struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	// The samples, absent when the job is not running.
	CPUPercent *float64     `json:"cpu_percent,omitempty"` // of one CPU: 400 is four busy CPUs
	MemoryMB   *int64       `json:"memory_mb,omitempty"`
	GPUs       []gpuMetrics `json:"gpus,omitempty"`
	Error      string       `json:"error,omitempty"`
}

type gpuMetrics struct {
	UUID               string  `json:"uuid"`
	UtilizationPercent float64 `json:"utilization_percent"`
	MemoryUsedMB       int64   `json:"memory_used_mb"`
}

func runMetrics(argv []string, s Streams, env Env) int {
	fs := newFlagSet("metrics", "metrics [options] RUN\n\nShows each running job's CPU, memory, GPU utilisation and GPU memory, as the\nagent of its host measures them now.", s)
	watch := fs.Bool("w", false, "refresh every 2 seconds until interrupted")
	replica := fs.Int("replica", -1, "only this job (replica or node); default: all")
	asJSON := fs.Bool("json", false, "print a JSON document")
	t, code := openRun(fs, argv, s, env)
	if t == nil {
		return code
	}
	defer t.cancel()
	if *watch && *asJSON {
		return fail(s, fmt.Errorf("metrics: -json prints once; it does not go with -w"))
	}
	for {
		jobs, err := sampleRun(t.ctx, t.set, t.run, *replica)
		if err != nil {
			if t.ctx.Err() != nil {
				return ExitOK
			}
			return fail(s, err)
		}
		if *asJSON {
			enc := json.NewEncoder(s.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(metricsDoc{FormatVersion: MetricsFormatVersion, Run: t.run.Address, Jobs: jobs}); err != nil {
				return fail(s, err)
			}
			return ExitOK
		}
		if *watch {
			fmt.Fprint(s.Stdout, "\x1b[H\x1b[2J")
		}
		writeMetrics(s.Stdout, t.run.Address, jobs)
		if !*watch {
			return ExitOK
		}
		select {
		case <-t.ctx.Done():
			return ExitOK
		case <-time.After(2 * time.Second):
		}
	}
}

// sampleRun asks the agents of a run's running jobs for their use, all
// at once. A job that stopped between looking and asking shows its
// status without samples.
func sampleRun(ctx context.Context, set providers.Set, r *state.Resource, replica int) ([]jobMetrics, error) {
	jobs, err := planner.ObserveRun(ctx, r, set)
	if err != nil {
		return nil, err
	}
	var out []jobMetrics
	var ins []*state.Instance
	for _, j := range jobs {
		if replica >= 0 && j.Index != replica {
			continue
		}
		out = append(out, jobMetrics{Index: j.Index, Status: j.Status})
		ins = append(ins, stateInstance(&state.State{Resources: []*state.Resource{r}}, r.Address, j.Index))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no job %d", r.Address, replica)
	}
	var g errgroup.Group
	g.SetLimit(16)
	for i := range out {
		jm, in := &out[i], ins[i]
		if jm.Status != providers.StatusRunning || in == nil {
			continue
		}
		g.Go(func() error {
			p, err := set.For(in.Provider)
			if err != nil {
				return err
			}
			mr, ok := p.(providers.MetricsReader)
			if !ok {
				return fmt.Errorf("backend %s does not report job metrics", in.Provider)
			}
			m, err := mr.JobMetrics(ctx, in.ProviderID)
			if err != nil {
				// It may have ended since: say so in its row.
				jm.Error = err.Error()
				return nil
			}
			jm.CPUPercent, jm.MemoryMB = &m.CPUPercent, &m.MemoryMB
			for _, g := range m.GPUs {
				jm.GPUs = append(jm.GPUs, gpuMetrics{UUID: g.UUID, UtilizationPercent: g.UtilizationPercent, MemoryUsedMB: g.MemoryUsedMB})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func writeMetrics(w io.Writer, run string, jobs []jobMetrics) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "RUN\tJOB\tSTATUS\tCPU\tMEMORY\tGPU\tGPU UTIL\tGPU MEMORY")
	for _, j := range jobs {
		cpu, mem := "-", "-"
		if j.CPUPercent != nil {
			cpu = strconv.FormatFloat(*j.CPUPercent, 'f', 1, 64) + "%"
		}
		if j.MemoryMB != nil {
			mem = fmt.Sprintf("%dMB", *j.MemoryMB)
		}
		status := j.Status
		if j.Error != "" {
			status += " (" + j.Error + ")"
		}
		row := []string{run, strconv.Itoa(j.Index), status, cpu, mem}
		if len(j.GPUs) == 0 {
			fmt.Fprintln(tw, strings.Join(append(row, "-", "-", "-"), "\t"))
			continue
		}
		for i, g := range j.GPUs {
			if i > 0 {
				row = []string{"", "", "", "", ""}
			}
			fmt.Fprintln(tw, strings.Join(append(row, g.UUID, strconv.FormatFloat(g.UtilizationPercent, 'f', 0, 64)+"%", fmt.Sprintf("%dMB", g.MemoryUsedMB)), "\t"))
		}
	}
}
