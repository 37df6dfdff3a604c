package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/local"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// resource is one Terraform resource type: one dstack kind. Each
// Terraform resource is one dstack resource (address kind.name), planned
// by planner.Make against a one-resource state built from its private
// state, and carried out by planner.Apply, the executor of `dstack
// apply`.
type resource struct {
	kind   lang.Kind
	schema tfplugin.Schema
	p      *dstack
}

var _ tfplugin.Resource = (*resource)(nil)

func (r *resource) Schema() tfplugin.Schema { return r.schema }

// Validate checks the configuration with the model's rules; values known
// only after apply are not checked.
func (r *resource) Validate(_ context.Context, config map[string]any) tfplugin.Diagnostics {
	_, diags := decodeConfig(r.kind, r.schema.Block, config)
	return append(diags, validateTimeouts(config)...)
}

func (r *resource) address(name string) string { return string(r.kind) + "." + name }

// errorsOnly keeps the errors: warnings were shown by Validate already.
func errorsOnly(ds tfplugin.Diagnostics) tfplugin.Diagnostics {
	var out tfplugin.Diagnostics
	for _, d := range ds {
		if d.Severity == tfplugin.Error {
			out = append(out, d)
		}
	}
	return out
}

// modelFields are the top-level configuration attributes.
func (r *resource) modelFields() []string {
	var out []string
	for _, a := range r.schema.Block.Attributes {
		if !a.Computed {
			out = append(out, a.Name)
		}
	}
	for _, b := range r.schema.Block.Blocks {
		if b.Name != blockTimeouts {
			out = append(out, b.Name)
		}
	}
	return out
}

func setComputedUnknown(obj map[string]any) {
	for _, a := range computedAttrs {
		obj[a.Name] = tfplugin.Unknown{}
	}
}

// Plan diffs the configuration against the resource's record in the
// provider's store with the planner's rules, placing runs and counting
// capacity against everything the provider manages (see configFor).
func (r *resource) Plan(ctx context.Context, req tfplugin.PlanRequest) (resp tfplugin.PlanResponse) {
	if req.Proposed == nil {
		if name, _ := req.Prior["name"].(string); name != "" {
			r.p.setPending(r.address(name), nil) // destroy
		}
		return resp
	}
	priv, err := readPrivate(req.PriorPrivate)
	if err != nil {
		resp.Diagnostics.FromError("Cannot plan", err)
		return resp
	}
	planned := maps.Clone(req.Proposed)
	resp.Planned = planned // filled in below
	// Attributes known only after apply are planned with their prior
	// values; whether their change forces a replacement is the planner's
	// rule for the field (planner.ForcesReplacement).
	input := maps.Clone(req.Proposed)
	var unknown []string
	for _, f := range r.modelFields() {
		if tfplugin.HasUnknown(input[f]) {
			unknown = append(unknown, f)
			if req.Prior != nil {
				input[f] = req.Prior[f]
			}
		}
	}
	res, diags := decodeConfig(r.kind, r.schema.Block, input)
	resp.Diagnostics = errorsOnly(diags)
	if resp.Diagnostics.HasErrors() {
		return resp
	}
	addr := res.Address.String()
	// For the create half of a replacement, Terraform passes the first
	// plan's private state here, and carries this plan's into the
	// destroy half too: the old record must stay in it.
	resp.PlannedPrivate = priv.bytes()
	if req.Prior != nil {
		if prior, _ := req.Prior["name"].(string); prior != res.Address.Name {
			setComputedUnknown(planned)
			resp.RequiresReplace = append(resp.RequiresReplace, tfplugin.Path{"name"})
			return resp
		}
	}
	_, sto, err := r.p.ready()
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan %s", addr), err)
		return resp
	}
	st, _, err := sto.snapshot(ctx)
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan %s", addr), err)
		return resp
	}
	rec := st.Resource(addr)
	if rec == nil && req.Prior != nil && priv.Resource != nil {
		// Made before the store existed: adopted at apply.
		rec = cloneResource(priv.Resource)
		st.Put(rec)
	}
	if req.Prior == nil {
		setComputedUnknown(planned)
		if len(unknown) > 0 {
			// Placement waits for apply: a value it needs is not known
			// yet.
			return resp
		}
		if _, err := r.p.makePlan(ctx, st, runPlan{res: res, addr: addr, pending: r.p.pendingBut(addr)}, planner.Normal); err != nil {
			resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan %s", addr), err)
			return resp
		}
		r.p.setPending(addr, res)
		return resp
	}
	if rec == nil {
		// In Terraform's state, but dstack has no record of it: make it
		// anew.
		setComputedUnknown(planned)
		resp.RequiresReplace = append(resp.RequiresReplace, tfplugin.Path{attrID})
		return resp
	}
	rp := runPlan{res: res, addr: addr, pending: r.p.pendingBut(addr)}
	if len(unknown) > 0 {
		rp.pending = nil // placement waits for apply
	}
	p, err := r.p.makePlan(ctx, st, rp, planner.Normal)
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan %s", addr), err)
		return resp
	}
	c := changeOf(p, addr)
	if len(unknown) > 0 {
		for _, f := range unknown {
			if planner.ForcesReplacement(res.Spec, f) {
				resp.RequiresReplace = append(resp.RequiresReplace, tfplugin.Path{f})
			}
		}
		if len(resp.RequiresReplace) > 0 {
			setComputedUnknown(planned)
			return resp
		}
	} else {
		r.p.setPending(addr, res)
	}
	if c == nil {
		return resp // no change: the planned state is the proposed one
	}
	switch c.Action {
	case planner.Update:
		// In place: what was made stays.
	case planner.Scale, planner.Create:
		planned[attrStatus], planned[attrPrice], planned[attrProvisioned] = tfplugin.Unknown{}, tfplugin.Unknown{}, tfplugin.Unknown{}
	case planner.Replace:
		setComputedUnknown(planned)
		if isRun(r.kind) {
			// A run's jobs are replaced within one apply of the
			// resource, by the planner's rule (a task's are stopped
			// first, a service's after the new ones start): a failed
			// start leaves the resource in Terraform's state, to be
			// made again, never dropped. Its id, the address, stays.
			planned[attrID] = req.Prior[attrID]
			how := "the old jobs stop, then new ones start, in this update (a failed start leaves the resource in the state, to be made by the next apply)"
			if c.CreateBeforeDestroy {
				how = "new jobs start, then the old ones stop, in this update"
			}
			resp.Diagnostics = append(resp.Diagnostics, tfplugin.Diagnostic{Severity: tfplugin.Warning,
				Summary: fmt.Sprintf("%s will be replaced", addr), Detail: capitalize(c.Reason) + ": " + how + "."})
			return resp
		}
		for _, fc := range c.Fields {
			if fc.ForcesReplacement {
				resp.RequiresReplace = append(resp.RequiresReplace, tfplugin.Path{fc.Field})
			}
		}
		if len(resp.RequiresReplace) == 0 {
			// Replaced for a reason outside the configuration (its host
			// goes away): the new object gets a new id.
			resp.RequiresReplace = append(resp.RequiresReplace, tfplugin.Path{attrID})
			resp.Diagnostics = append(resp.Diagnostics, tfplugin.Diagnostic{Severity: tfplugin.Warning,
				Summary: fmt.Sprintf("%s will be replaced", addr), Detail: capitalize(c.Reason) + "."})
		}
	}
	return resp
}

// isRun says whether a kind is a run: its objects are jobs.
func isRun(k lang.Kind) bool {
	return k == lang.KindTask || k == lang.KindService || k == lang.KindDevEnvironment
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func changeOf(p *planner.Plan, addr string) *planner.Change {
	for _, c := range p.Changes {
		if c.Address == addr {
			return c
		}
	}
	return nil
}

// Apply carries out the change with the executor of `dstack apply`,
// into the provider's store, under its lock.
// Each operation is bounded by its timeout in the resource's timeouts
// block.
func (r *resource) Apply(ctx context.Context, req tfplugin.ApplyRequest) (resp tfplugin.ApplyResponse) {
	priv, err := readPrivate(req.PlannedPrivate)
	if err != nil {
		resp.Diagnostics.FromError("Cannot apply", err)
		resp.State = req.Prior
		return resp
	}
	if req.Planned == nil {
		name, _ := req.Prior["name"].(string)
		ctx, cancel := withTimeout(ctx, req.Prior, opDelete, r.address(name))
		defer cancel()
		resp = r.destroy(ctx, req, priv)
		resp.Diagnostics = timedOut(ctx, resp.Diagnostics)
		return resp
	}
	res, diags := decodeConfig(r.kind, r.schema.Block, req.Planned)
	if diags.HasErrors() {
		resp.Diagnostics = errorsOnly(diags)
		resp.State = req.Prior
		return resp
	}
	addr := res.Address.String()
	op := opUpdate
	if req.Prior == nil {
		op = opCreate
	}
	ctx, cancel := withTimeout(ctx, req.Planned, op, addr)
	defer cancel()
	defer func() { resp.Diagnostics = timedOut(ctx, resp.Diagnostics) }()
	var made *state.Resource
	var planErr, applyErr error
	_, sto, err := r.p.ready()
	if err == nil {
		err = sto.hold(ctx, "apply", func(ss *session) error {
			if ss.st.Resource(addr) == nil && req.Prior != nil && priv.Resource != nil {
				ss.st.Put(cloneResource(priv.Resource)) // adopted
			}
			p, err := r.p.makePlan(ctx, ss.st, runPlan{res: res, addr: addr}, planner.Normal)
			if err != nil {
				planErr = err
				return nil
			}
			made, applyErr = r.p.apply(ctx, p, ss, addr)
			return nil
		})
	}
	if err == nil {
		err = planErr
	}
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan %s", addr), err)
		resp.State, resp.Private = req.Prior, priv.bytes()
		return resp
	}
	if applyErr != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Applying %s failed", addr), applyErr)
		if made == nil && req.Prior == nil {
			return resp // nothing was made
		}
		// A resource that was in Terraform's state stays there, even
		// when its old jobs are gone and the new ones failed to start:
		// the next plan makes it again.
	}
	resp.State = maps.Clone(req.Planned)
	fillComputed(resp.State, made, addr, true)
	resp.Private = (&private{Resource: made}).bytes()
	return resp
}

func (r *resource) destroy(ctx context.Context, req tfplugin.ApplyRequest, priv *private) (resp tfplugin.ApplyResponse) {
	name, _ := req.Prior["name"].(string)
	addr := r.address(name)
	_, sto, err := r.p.ready()
	var left *state.Resource
	var applyErr error
	if err == nil {
		err = sto.hold(ctx, "destroy", func(ss *session) error {
			if ss.st.Resource(addr) == nil {
				if priv.Resource == nil || priv.Resource.Address != addr {
					return nil // no record: nothing to destroy
				}
				ss.st.Put(cloneResource(priv.Resource))
			}
			p, err := r.p.makePlan(ctx, ss.st, runPlan{addr: addr}, planner.Destroy)
			if err != nil {
				return err
			}
			left, applyErr = r.p.apply(ctx, p, ss, addr)
			return nil
		})
	}
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot plan the destruction of %s", addr), err)
		resp.State, resp.Private = req.Prior, priv.bytes()
		return resp
	}
	if applyErr != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Destroying %s failed", addr), applyErr)
		if left != nil {
			resp.State = maps.Clone(req.Prior)
			fillComputed(resp.State, left, left.Address, false)
			resp.Private = (&private{Resource: left}).bytes()
			return resp
		}
	}
	return resp
}

// Read refreshes the resource's record in the store from the providers,
// as `dstack plan` does: an instance terminated outside dstack is drift,
// reported and dropped from the record, and the next plan makes it
// again.
func (r *resource) Read(ctx context.Context, req tfplugin.ReadRequest) (resp tfplugin.ReadResponse) {
	resp.State, resp.Private = req.State, req.Private
	priv, err := readPrivate(req.Private)
	if err != nil {
		resp.Diagnostics.FromError("Cannot refresh", err)
		return resp
	}
	name, _ := req.State["name"].(string)
	addr := r.address(name)
	set, sto, err := r.p.ready()
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Refreshing %s failed", addr), err)
		return resp
	}
	var res *state.Resource
	var drift []planner.Drift
	err = sto.hold(ctx, "refresh", func(ss *session) error {
		rec := ss.st.Resource(addr)
		if rec == nil {
			if priv.Resource == nil || priv.Resource.Address != addr {
				return nil
			}
			rec = cloneResource(priv.Resource) // adopted
		}
		one := state.New(r.p.version)
		one.Put(cloneResource(rec))
		// Intents of an apply that lost the store's lock stay pending
		// while its process may still make them (see planner/fence.go).
		ropts := planner.RefreshOptions{Holder: ss.lease.Info.ID, WriterGone: local.ProcessGone}
		if drift, err = planner.Refresh(ctx, one, set, ropts); err != nil {
			return err
		}
		res = one.Resource(addr)
		ss.st.Put(res)
		return ss.write(ctx, ss.st)
	})
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Refreshing %s failed", addr), err)
		return resp
	}
	if res == nil {
		return resp
	}
	for _, d := range drift {
		resp.Diagnostics = append(resp.Diagnostics, tfplugin.Diagnostic{Severity: tfplugin.Warning,
			Summary: fmt.Sprintf("%s changed outside Terraform", d.Address), Detail: capitalize(d.Message) + "."})
	}
	resp.State = maps.Clone(req.State)
	fillComputed(resp.State, res, addr, false)
	if r.kind == lang.KindTask {
		keepNormalFinish(resp.State, req.State)
	}
	resp.Private = (&private{Resource: res}).bytes()
	return resp
}

// keepNormalFinish keeps a task's status and provisioned as the prior
// state has them when all that changed is that its jobs finished
// normally (running or provisioning, now done): a task ends by itself,
// and Terraform would show that as a change made outside Terraform, and
// as a change of every output that names them. A job that failed, was
// stopped or is gone is a change, shown as one. The dstack record, in
// the store, has the jobs as they are: plans follow it.
func keepNormalFinish(next, prior map[string]any) {
	was, _ := prior[attrProvisioned].([]any)
	now, _ := next[attrProvisioned].([]any)
	if len(was) == 0 || len(was) != len(now) {
		return
	}
	for i := range now {
		w, _ := was[i].(map[string]any)
		n, _ := now[i].(map[string]any)
		if w == nil || n == nil || len(w) != len(n) {
			return
		}
		for k, v := range n {
			if k == "status" && !reflect.DeepEqual(v, w[k]) {
				if v != providers.StatusDone || !running(w[k]) {
					return
				}
				continue
			}
			if !reflect.DeepEqual(v, w[k]) {
				return
			}
		}
	}
	if next[attrStatus] != prior[attrStatus] && (next[attrStatus] != providers.StatusDone || !running(prior[attrStatus])) {
		return
	}
	next[attrProvisioned], next[attrStatus] = prior[attrProvisioned], prior[attrStatus]
}

// running says whether a status is that of a job that has not ended.
func running(status any) bool {
	return status == providers.StatusRunning || status == providers.StatusProvisioning
}

// Upgrade fits a stored state to the current schema. Version 0 (the
// provider's pre-release schema) called the price attribute
// cost_per_hour. States of the current version written by an older
// provider may lack model fields added since (they become null) or hold
// ones removed since (they are dropped).
func (r *resource) Upgrade(_ context.Context, version int64, raw map[string]any) (map[string]any, tfplugin.Diagnostics) {
	var diags tfplugin.Diagnostics
	if version > schemaVersion {
		diags.Errorf(nil, "State written by a newer provider", "This state has schema version %d; this provider knows versions up to %d. Upgrade the dstack provider.", version, schemaVersion)
		return nil, diags
	}
	if version == 0 {
		if v, ok := raw["cost_per_hour"]; ok {
			raw[attrPrice] = v
			delete(raw, "cost_per_hour")
		}
	}
	out, _, err := tfplugin.FitJSON(r.schema.Block, raw)
	if err != nil {
		diags.Errorf(nil, "Cannot upgrade the state", "%v", err)
		return nil, diags
	}
	return out, diags
}

// Import adopts a resource by its name or address. One the provider's
// store has (anything the provider made, removed from Terraform's state
// with terraform state rm) is adopted from there. A fleet or volume made
// with the dstack CLI is moved: its record leaves the CLI's state for the
// store, so that the CLI no longer manages it, and a warning says so.
func (r *resource) Import(ctx context.Context, id string) (resp tfplugin.ImportResponse) {
	name := strings.TrimPrefix(id, string(r.kind)+".")
	if !lang.ValidName(name) {
		resp.Diagnostics.Errorf(nil, "Invalid import ID", "Give the %s's name (lower-case letters, digits and dashes), got %q.", r.kind, id)
		return resp
	}
	addr := r.address(name)
	_, sto, err := r.p.ready()
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot import %s", addr), err)
		return resp
	}
	var rec *state.Resource
	moved := false
	err = sto.hold(ctx, "import", func(ss *session) error {
		if have := ss.st.Resource(addr); have != nil {
			rec = cloneResource(have)
			return nil
		}
		if !importable(r.kind) {
			return fmt.Errorf("the provider's store (workspace %q) has no %s; only fleets and volumes made with the dstack CLI can be imported, and runs are declared anew", sto.workspace, addr)
		}
		return r.p.settings.moveFromCLI(ctx, addr, sto.version, func(got *state.Resource) error {
			if _, err := recordedSpec(got); err != nil {
				return err
			}
			ss.st.Put(cloneResource(got))
			if err := ss.write(ctx, ss.st); err != nil {
				return err
			}
			rec, moved = got, true
			return nil
		})
	})
	if err == nil && rec == nil {
		err = fmt.Errorf("%s was not found", addr)
	}
	var spec lang.Spec
	if err == nil {
		spec, err = recordedSpec(rec)
	}
	if err != nil {
		resp.Diagnostics.FromError(fmt.Sprintf("Cannot import %s", addr), err)
		return resp
	}
	if moved {
		s := r.p.settings
		resp.Diagnostics = append(resp.Diagnostics, tfplugin.Diagnostic{Severity: tfplugin.Warning,
			Summary: fmt.Sprintf("%s moved out of the dstack CLI's state", addr),
			Detail: fmt.Sprintf("The record of %s was moved from the dstack state (%s backend, workspace %q) into the provider's store (workspace %q): "+
				"the dstack CLI no longer manages it, and dstack destroy leaves it alone. Terraform manages it from now on.", addr, s.stateBackend, s.workspace, sto.workspace)})
	}
	resp.State = specValue(spec)
	resp.State["name"] = name
	fillComputed(resp.State, rec, rec.Address, false)
	resp.Private = (&private{Resource: rec}).bytes()
	return resp
}

// recordedSpec decodes the configuration a dstack state record holds.
func recordedSpec(rec *state.Resource) (lang.Spec, error) {
	raw, ok := rec.Attributes[planner.AttrSpec]
	if !ok {
		return nil, fmt.Errorf("%s has no recorded configuration (an apply was interrupted); run dstack apply first", rec.Address)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	spec, err := lang.DecodeSpec(b)
	if err != nil {
		return nil, fmt.Errorf("the recorded configuration of %s does not load: %w", rec.Address, err)
	}
	return spec, nil
}

// fillComputed sets the computed attributes from a dstack record. With
// keepKnown, values the plan already knew stay (Terraform holds apply to
// them).
func fillComputed(obj map[string]any, res *state.Resource, addr string, keepKnown bool) {
	set := func(k string, v any) {
		if keepKnown {
			if cur, ok := obj[k]; ok && !tfplugin.IsUnknown(cur) {
				return
			}
		}
		obj[k] = v
	}
	set(attrID, addr)
	var insts []*state.Instance
	if res != nil {
		insts = slices.Clone(res.Instances)
	}
	sort.Slice(insts, func(i, j int) bool { return insts[i].Index < insts[j].Index })
	list := []any{}
	total := 0.0
	statuses := map[string]bool{}
	for _, in := range insts {
		// Attribute keys as the planner records them (planner/place.go).
		price, _ := in.Attributes[planner.AttrPrice].(float64)
		ip, _ := in.Attributes[providers.AttrIP].(string)
		// host is null where the object runs on no fleet instance (a
		// fleet's own instances, a run on machines of its own), in the
		// resources and the dstack_fleet data source alike.
		var host any
		if h, _ := in.Attributes[planner.AttrHostAddress].(string); h != "" {
			host = h
		}
		total += price
		statuses[in.Status] = true
		list = append(list, map[string]any{"index": float64(in.Index), "backend": in.Provider, "provider_id": in.ProviderID,
			"status": in.Status, "ip": ip, "host": host, "price": price})
	}
	set(attrProvisioned, list)
	set(attrPrice, total)
	status := ""
	for _, s := range []string{providers.StatusFailed, providers.StatusProvisioning, "creating", providers.StatusRunning, providers.StatusStopped, providers.StatusDone, providers.StatusTerminated} {
		if statuses[s] {
			status = s
			break
		}
	}
	if status == "creating" {
		status = providers.StatusProvisioning
	}
	set(attrStatus, status)
}
