package controller

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// Handler is the loop's HTTP API. Every request needs
// `Authorization: Bearer TOKEN`:
//
//	GET  /api/runs                the runs and their jobs, as the last tick saw them
//	GET  /api/runs/NAME/logs      a run's output (?job=INDEX, default 0; ?since=BYTE)
//	GET  /api/runs/NAME/metrics   each running job's CPU, memory and GPU use, from its host's agent
//	GET  /api/metrics             the loop's ticks, what they did, the request rates read
//	POST /api/apply               a saved plan (the file `dstack plan -out` writes) as
//	                              the body: the next tick applies it, under the lock, if
//	                              the state is still the one it was made against
func (l *Loop) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/runs", l.handleRuns)
	mux.HandleFunc("GET /api/runs/{name}/logs", l.handleLogs)
	mux.HandleFunc("GET /api/runs/{name}/metrics", l.handleRunMetrics)
	mux.HandleFunc("GET /api/metrics", l.handleMetrics)
	mux.HandleFunc("POST /api/apply", l.handleApply)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dstack server"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid token is required: Authorization: Bearer TOKEN"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// RunInfo is one run in GET /api/runs.
type RunInfo struct {
	Name    string    `json:"name"`
	Kind    lang.Kind `json:"kind"`
	Address string    `json:"address"`
	Jobs    []JobInfo `json:"jobs"`
}

// JobInfo is one job (a replica, a node) of a run.
type JobInfo struct {
	Index      int    `json:"index"`
	Status     string `json:"status"`
	ProviderID string `json:"provider_id,omitempty"`
	Backend    string `json:"backend,omitempty"`
	Host       string `json:"host,omitempty"`
}

func (l *Loop) handleRuns(w http.ResponseWriter, r *http.Request) {
	st := l.State()
	runs := []RunInfo{}
	if st != nil {
		for _, res := range st.Resources {
			a, err := lang.ParseAddress(res.Address)
			if err != nil || !a.Kind.IsRun() {
				continue
			}
			ri := RunInfo{Name: a.Name, Kind: a.Kind, Address: res.Address, Jobs: []JobInfo{}}
			for _, in := range res.Instances {
				ri.Jobs = append(ri.Jobs, JobInfo{Index: in.Index, Status: in.Status, ProviderID: in.ProviderID, Backend: in.Provider,
					Host: attr(in, planner.AttrHostAddress)})
			}
			slices.SortFunc(ri.Jobs, func(a, b JobInfo) int { return a.Index - b.Index })
			runs = append(runs, ri)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

func (l *Loop) handleLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st := l.State()
	var job *state.Instance
	want := 0
	if v := r.URL.Query().Get("job"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "job: want a job index"})
			return
		}
		want = n
	}
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if st != nil {
		for _, k := range []lang.Kind{lang.KindTask, lang.KindService, lang.KindDevEnvironment} {
			if res := st.Resource(string(k) + "." + name); res != nil {
				for _, in := range res.Instances {
					if in.Index == want && in.ProviderID != "" {
						job = in
					}
				}
			}
		}
	}
	if job == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no job %d of a run %q", want, name)})
		return
	}
	prov, err := l.opts.Providers.For(job.Provider)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	jc, ok := prov.(providers.JobControl)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": fmt.Sprintf("the %s backend keeps no job output", job.Provider)})
		return
	}
	planner.Recall(st, l.opts.Providers)
	rd, err := jc.Logs(r.Context(), job.ProviderID, since, false)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.Copy(w, rd)
}

func (l *Loop) handleMetrics(w http.ResponseWriter, r *http.Request) {
	hist := l.History()
	out := map[string]any{"ticks": len(hist), "rates_rps": l.Rates(), "interval_seconds": l.opts.Interval.Seconds()}
	if len(hist) > 0 {
		out["last"] = hist[len(hist)-1]
	}
	var acted []Report
	for _, h := range hist {
		if len(h.Changes) > 0 || len(h.Drift) > 0 || h.Error != "" {
			acted = append(acted, h)
		}
	}
	out["actions"] = acted
	writeJSON(w, http.StatusOK, out)
}

// pendingApply is a saved plan waiting for a tick.
type pendingApply struct {
	plan *planner.Plan
	done chan applyOutcome
}

type applyOutcome struct {
	Report Report `json:"report"`
	Err    string `json:"error,omitempty"`
}

func (l *Loop) queued() []*pendingApply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applyQ
}

// ApplyTimeout bounds how long POST /api/apply waits for its tick.
const ApplyTimeout = 10 * time.Minute

func (l *Loop) handleApply(w http.ResponseWriter, r *http.Request) {
	p, err := planner.ReadPlan(io.LimitReader(r.Body, 64<<20), "the request body")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	pa := &pendingApply{plan: p, done: make(chan applyOutcome, 1)}
	l.mu.Lock()
	l.applyQ = append(l.applyQ, pa)
	l.mu.Unlock()
	// Not the request's context: the plan is applied to the end once its
	// tick starts it.
	go func() { _, _ = l.Tick(context.WithoutCancel(r.Context())) }()
	select {
	case out := <-pa.done:
		code := http.StatusOK
		if out.Err != "" {
			code = http.StatusConflict
		}
		writeJSON(w, code, out)
	case <-time.After(ApplyTimeout):
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": "the plan was not applied in time; it stays queued"})
	}
}

// applyQueued applies the saved plans handed in, one by one, each
// against the state as it is after the one before: a plan made against
// another state is refused as stale.
func (l *Loop) applyQueued(ctx context.Context, lease *state.Lease, store *planner.Store, snap *state.Snapshot, rep *Report) error {
	l.mu.Lock()
	q := l.applyQ
	l.applyQ = nil
	l.mu.Unlock()
	var errs []error
	for _, pa := range q {
		out := applyOutcome{}
		err := l.applySaved(ctx, lease, store, snap, pa.plan, rep)
		if err != nil {
			out.Err = err.Error()
			errs = append(errs, err)
		} else if snap2, err := store.Backend.Read(ctx, store.Workspace); err == nil {
			snap = snap2
			store.Version = snap.Version
			rep.Serial = snap.State.Serial
			l.setState(snap.State)
			l.publish(ctx, snap.State)
		}
		out.Report = *rep
		pa.done <- out
	}
	return errors.Join(errs...)
}

func (l *Loop) applySaved(ctx context.Context, lease *state.Lease, store *planner.Store, snap *state.Snapshot, p *planner.Plan, rep *Report) error {
	var lineage string
	var serial uint64
	if snap != nil {
		lineage, serial = snap.State.Lineage, snap.State.Serial
	}
	if err := p.CheckFresh(lineage, serial, snap != nil); err != nil {
		return err
	}
	if p.Workspace != l.opts.Workspace {
		return fmt.Errorf("the plan was made for workspace %q, this server's is %q", p.Workspace, l.opts.Workspace)
	}
	for _, c := range p.Changes {
		rep.Changes = append(rep.Changes, c.Address+": "+c.Reason+" (saved plan)")
	}
	res, err := l.apply(ctx, lease, store, p)
	if err != nil {
		return fmt.Errorf("applying the saved plan: %w", err)
	}
	return res.Err()
}

// JobMetrics is one job in GET /api/runs/NAME/metrics.
type JobMetrics struct {
	Index      int      `json:"index"`
	CPUPercent float64  `json:"cpu_percent"`
	MemoryMB   int64    `json:"memory_mb"`
	GPUs       []GPUUse `json:"gpus,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// GPUUse is one GPU of a job.
type GPUUse struct {
	UUID               string  `json:"uuid"`
	UtilizationPercent float64 `json:"utilization_percent"`
	MemoryUsedMB       int64   `json:"memory_used_mb"`
}

func (l *Loop) handleRunMetrics(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st := l.State()
	var res *state.Resource
	if st != nil {
		for _, k := range []lang.Kind{lang.KindTask, lang.KindService, lang.KindDevEnvironment} {
			if x := st.Resource(string(k) + "." + name); x != nil {
				res = x
			}
		}
	}
	if res == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no run %q", name)})
		return
	}
	planner.Recall(st, l.opts.Providers)
	out := []JobMetrics{}
	for _, in := range res.Instances {
		if in.Status != providers.StatusRunning || in.ProviderID == "" {
			continue
		}
		jm := JobMetrics{Index: in.Index}
		prov, err := l.opts.Providers.For(in.Provider)
		mr, ok := prov.(providers.MetricsReader)
		switch {
		case err != nil:
			jm.Error = err.Error()
		case !ok:
			jm.Error = fmt.Sprintf("the %s backend reports no metrics", in.Provider)
		default:
			m, err := mr.JobMetrics(r.Context(), in.ProviderID)
			if err != nil {
				jm.Error = err.Error()
			}
			jm.CPUPercent, jm.MemoryMB = m.CPUPercent, m.MemoryMB
			for _, g := range m.GPUs {
				jm.GPUs = append(jm.GPUs, GPUUse{UUID: g.UUID, UtilizationPercent: g.UtilizationPercent, MemoryUsedMB: g.MemoryUsedMB})
			}
		}
		out = append(out, jm)
	}
	slices.SortFunc(out, func(a, b JobMetrics) int { return a.Index - b.Index })
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}
