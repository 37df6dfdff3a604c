package tfplugin_test

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/dstackai/dstack-go/agent/agentd"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/provider"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// These tests call the provider's protocol 6 server in-process, with
// values encoded as Terraform encodes them, for the edge cases the
// terraform CLI does not reach easily. Fleets on the local backend need
// no agent (the machine is registered, not started), so no process is
// started here.

type harness struct {
	t        *testing.T
	srv      tfprotov6.ProviderServer
	p        *tfplugin.Provider
	agentDir string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	agentDir := filepath.Join(dir, "agent")
	p := provider.New(provider.Options{Version: "test", Environ: func(k string) (string, bool) {
		if k == "DSTACK_AGENT_DIR" {
			return agentDir, true
		}
		return "", false
	}, Home: dir})
	h := &harness{t: t, srv: tfplugin.NewServer(p), p: p, agentDir: agentDir}
	cfg := h.encode(p.Config.Block, map[string]any{"state_config": map[string]any{"path": filepath.Join(dir, "dstack-state")}})
	resp, err := h.srv.ConfigureProvider(context.Background(), &tfprotov6.ConfigureProviderRequest{Config: cfg})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("configure: %v %v", err, diagText(resp.Diagnostics))
	}
	return h
}

func diagText(ds []*tfprotov6.Diagnostic) string {
	var out []string
	for _, d := range ds {
		p := ""
		if d.Attribute != nil {
			p = d.Attribute.String() + ": "
		}
		out = append(out, p+d.Summary+": "+d.Detail)
	}
	return strings.Join(out, "\n")
}

func (h *harness) block(typ string) tfplugin.Block { return h.p.Resources[typ].Schema().Block }

func (h *harness) encode(b tfplugin.Block, obj map[string]any) *tfprotov6.DynamicValue {
	h.t.Helper()
	dv, err := tfplugin.EncodeValue(b, obj)
	if err != nil {
		h.t.Fatalf("encoding: %v", err)
	}
	return dv
}

func (h *harness) decode(b tfplugin.Block, dv *tfprotov6.DynamicValue) map[string]any {
	h.t.Helper()
	obj, err := tfplugin.DecodeValue(b, dv)
	if err != nil {
		h.t.Fatalf("decoding: %v", err)
	}
	return obj
}

// startAgent runs the host agent in this process until the test ends;
// the provider finds it through its directory.
func (h *harness) startAgent() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agentd.Run(ctx, []string{"-listen", "127.0.0.1:0", "-data-dir", h.agentDir}, io.Discard)
	}()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("agent: %v", err)
		}
	})
	deadline := time.Now().Add(agentproc.StartTimeout)
	for {
		if _, ok := agentproc.Probe(ctx, h.agentDir); ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the agent did not start")
		}
		select {
		case err := <-done:
			h.t.Fatalf("the agent exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fleet is a configuration of a one-node local fleet, with the
// computed attributes null, as Terraform sends a config.
func fleet(extra map[string]any) map[string]any {
	obj := map[string]any{"name": "edge", "nodes": "1", "backends": []any{"local"},
		"resources": map[string]any{"cpu": "1..", "memory": "64MB..", "disk": "1GB.."}}
	for k, v := range extra {
		obj[k] = v
	}
	return obj
}

// withComputed copies proposed values over a prior state's computed
// attributes, as Terraform's ProposedNewState does.
func withComputed(cfg, prior map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cfg {
		out[k] = v
	}
	for _, k := range []string{"id", "status", "price", "provisioned"} {
		if prior == nil {
			out[k] = tfplugin.Unknown{}
		} else {
			out[k] = prior[k]
		}
	}
	return out
}

func (h *harness) plan(typ string, prior map[string]any, priorPrivate []byte, cfg map[string]any) *tfprotov6.PlanResourceChangeResponse {
	h.t.Helper()
	b := h.block(typ)
	proposed := withComputed(cfg, prior)
	if prior == nil {
		for _, k := range []string{"id", "status", "price", "provisioned"} {
			proposed[k] = nil
		}
	}
	resp, err := h.srv.PlanResourceChange(context.Background(), &tfprotov6.PlanResourceChangeRequest{TypeName: typ,
		PriorState: h.encode(b, prior), ProposedNewState: h.encode(b, proposed), Config: h.encode(b, cfg), PriorPrivate: priorPrivate})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// create plans and applies a new resource and returns its state and
// private state.
func (h *harness) create(typ string, cfg map[string]any) (map[string]any, []byte) {
	h.t.Helper()
	b := h.block(typ)
	pr := h.plan(typ, nil, nil, cfg)
	if len(pr.Diagnostics) > 0 {
		h.t.Fatalf("plan: %s", diagText(pr.Diagnostics))
	}
	ar, err := h.srv.ApplyResourceChange(context.Background(), &tfprotov6.ApplyResourceChangeRequest{TypeName: typ,
		PriorState: h.encode(b, nil), PlannedState: pr.PlannedState, Config: h.encode(b, cfg), PlannedPrivate: pr.PlannedPrivate})
	if err != nil || len(ar.Diagnostics) > 0 {
		h.t.Fatalf("apply: %v %s", err, diagText(ar.Diagnostics))
	}
	return h.decode(b, ar.NewState), ar.Private
}

func replacePaths(resp *tfprotov6.PlanResourceChangeResponse) []string {
	var out []string
	for _, p := range resp.RequiresReplace {
		out = append(out, p.String())
	}
	return out
}

func TestSchemaHasEveryResource(t *testing.T) {
	h := newHarness(t)
	resp, err := h.srv.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range resp.ResourceSchemas {
		got = append(got, name)
	}
	for name := range resp.DataSourceSchemas {
		got = append(got, "data."+name)
	}
	slices.Sort(got)
	want := []string{"dstack_dev_environment", "dstack_fleet", "dstack_gateway", "dstack_service", "dstack_task", "dstack_volume", "data.dstack_fleet", "data.dstack_offers"}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
	blocks := map[string][]string{"dstack_fleet": {"resources", "retry", "ssh_config"}, "dstack_service": {"resources", "scaling", "retry"}}
	for typ, names := range blocks {
		for _, n := range names {
			found := false
			for _, bt := range resp.ResourceSchemas[typ].Block.BlockTypes {
				found = found || bt.TypeName == n
			}
			if !found {
				t.Errorf("%s has no nested block %s", typ, n)
			}
		}
	}
}

func TestValidationPointsAtAttribute(t *testing.T) {
	h := newHarness(t)
	cfg := fleet(map[string]any{"resources": map[string]any{"gpu": "H100:8:4"}, "spot_policy": "sometimes"})
	resp, err := h.srv.ValidateResourceConfig(context.Background(), &tfprotov6.ValidateResourceConfigRequest{TypeName: "dstack_fleet",
		Config: h.encode(h.block("dstack_fleet"), withComputed(cfg, map[string]any{}))})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range resp.Diagnostics {
		got = append(got, d.Attribute.String())
	}
	want := []string{
		tfplugin.AttributePath(tfplugin.Path{"resources", "gpu"}).String(),
		tfplugin.AttributePath(tfplugin.Path{"spot_policy"}).String(),
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostic paths (-want +got):\n%s\n%s", diff, diagText(resp.Diagnostics))
	}
}

func TestPlanWithUnknownValues(t *testing.T) {
	h := newHarness(t)
	b := h.block("dstack_fleet")

	t.Run("create", func(t *testing.T) {
		resp := h.plan("dstack_fleet", nil, nil, fleet(map[string]any{"tags": tfplugin.Unknown{}}))
		if len(resp.Diagnostics) > 0 {
			t.Fatal(diagText(resp.Diagnostics))
		}
		planned := h.decode(b, resp.PlannedState)
		for _, k := range []string{"id", "status", "price", "provisioned"} {
			if !tfplugin.IsUnknown(planned[k]) {
				t.Errorf("%s = %v, want unknown", k, planned[k])
			}
		}
		if !tfplugin.IsUnknown(planned["tags"]) {
			t.Errorf("tags = %v, want unknown as configured", planned["tags"])
		}
	})

	prior, priv := h.create("dstack_fleet", fleet(nil))
	for _, tc := range []struct {
		name        string
		extra       map[string]any
		wantReplace []string
	}{
		{"in-place field", map[string]any{"tags": tfplugin.Unknown{}}, nil},
		{"replacing field", map[string]any{"placement": tfplugin.Unknown{}}, []string{tfplugin.AttributePath(tfplugin.Path{"placement"}).String()}},
		{"unknown element of a list", map[string]any{"regions": []any{"local", tfplugin.Unknown{}}}, []string{tfplugin.AttributePath(tfplugin.Path{"regions"}).String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.plan("dstack_fleet", prior, priv, fleet(tc.extra))
			if len(resp.Diagnostics) > 0 {
				t.Fatal(diagText(resp.Diagnostics))
			}
			if diff := cmp.Diff(tc.wantReplace, replacePaths(resp)); diff != "" {
				t.Errorf("RequiresReplace (-want +got):\n%s", diff)
			}
			planned := h.decode(b, resp.PlannedState)
			if tc.wantReplace == nil && planned["id"] != prior["id"] {
				t.Errorf("in place, id = %v, want %v", planned["id"], prior["id"])
			}
		})
	}
}

func TestNullAndEmptyListsPlanAlike(t *testing.T) {
	h := newHarness(t)
	b := h.block("dstack_fleet")
	prior, priv := h.create("dstack_fleet", fleet(map[string]any{"regions": nil}))
	for _, regions := range []any{nil, []any{}} {
		resp := h.plan("dstack_fleet", prior, priv, fleet(map[string]any{"regions": regions}))
		if len(resp.Diagnostics) > 0 || len(resp.RequiresReplace) > 0 {
			t.Fatalf("regions %#v: %s, replace %v", regions, diagText(resp.Diagnostics), replacePaths(resp))
		}
		planned := h.decode(b, resp.PlannedState)
		if diff := cmp.Diff(prior["provisioned"], planned["provisioned"]); diff != "" {
			t.Errorf("regions %#v: what was made changes (-prior +planned):\n%s", regions, diff)
		}
		if diff := cmp.Diff(regions, planned["regions"]); diff != "" {
			t.Errorf("regions %#v: the planned value is not the configured one:\n%s", regions, diff)
		}
	}
}

func TestUpgradeOlderState(t *testing.T) {
	h := newHarness(t)
	old := map[string]any{
		"name": "edge", "nodes": "1", "backends": []any{"local"}, "id": "fleet.edge", "status": "running",
		"cost_per_hour":   1.5,     // version 0's name of price
		"retired_setting": "gone",  // an attribute the schema no longer has
		"provisioned":     []any{}, // reservation and the model's newer fields are missing
		"resources":       map[string]any{"cpu": "2.."},
	}
	raw, _ := json.Marshal(old)
	resp, err := h.srv.UpgradeResourceState(context.Background(), &tfprotov6.UpgradeResourceStateRequest{TypeName: "dstack_fleet", Version: 0,
		RawState: &tfprotov6.RawState{JSON: raw}})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("upgrade: %v %s", err, diagText(resp.Diagnostics))
	}
	got := h.decode(h.block("dstack_fleet"), resp.UpgradedState)
	if got["price"] != 1.5 || got["reservation"] != nil || got["name"] != "edge" {
		t.Errorf("upgraded: price %v, reservation %v, name %v", got["price"], got["reservation"], got["name"])
	}
	if res, _ := got["resources"].(map[string]any); res["cpu"] != "2.." || res["gpu"] != nil {
		t.Errorf("upgraded resources: %v", got["resources"])
	}

	raw, _ = json.Marshal(map[string]any{"name": "edge"})
	resp, _ = h.srv.UpgradeResourceState(context.Background(), &tfprotov6.UpgradeResourceStateRequest{TypeName: "dstack_fleet", Version: 99,
		RawState: &tfprotov6.RawState{JSON: raw}})
	if len(resp.Diagnostics) != 1 || !strings.Contains(resp.Diagnostics[0].Summary, "newer provider") {
		t.Errorf("a state from a newer provider: %s", diagText(resp.Diagnostics))
	}
}

// TestTerminatedInstanceIsDrift removes the fleet's machine outside
// Terraform: refresh reports it and drops it, and the plan makes it
// again, in place.
func TestTerminatedInstanceIsDrift(t *testing.T) {
	h := newHarness(t)
	b := h.block("dstack_fleet")
	prior, priv := h.create("dstack_fleet", fleet(nil))
	list, _ := prior["provisioned"].([]any)
	if len(list) != 1 {
		t.Fatalf("provisioned: %v", prior["provisioned"])
	}
	id := list[0].(map[string]any)["provider_id"].(string)
	// Refresh asks the agent about a token with no record (it could be
	// a job): run one in-process.
	h.startAgent()
	local := agentproc.Provider(h.agentDir, nil)
	if err := local.Delete(context.Background(), providers.KindInstance, id); err != nil {
		t.Fatal(err)
	}
	rr, err := h.srv.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "dstack_fleet",
		CurrentState: h.encode(b, prior), Private: priv})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Diagnostics) != 1 || rr.Diagnostics[0].Severity != tfprotov6.DiagnosticSeverityWarning ||
		!strings.Contains(rr.Diagnostics[0].Detail, "deleted outside dstack") {
		t.Errorf("refresh diagnostics: %s", diagText(rr.Diagnostics))
	}
	refreshed := h.decode(b, rr.NewState)
	if l, _ := refreshed["provisioned"].([]any); len(l) != 0 {
		t.Errorf("provisioned after refresh: %v, want none", refreshed["provisioned"])
	}
	resp := h.plan("dstack_fleet", refreshed, rr.Private, fleet(nil))
	if len(resp.Diagnostics) > 0 || len(resp.RequiresReplace) > 0 {
		t.Fatalf("plan: %s, replace %v", diagText(resp.Diagnostics), replacePaths(resp))
	}
	planned := h.decode(b, resp.PlannedState)
	if !tfplugin.IsUnknown(planned["provisioned"]) || planned["id"] != "fleet.edge" {
		t.Errorf("planned: provisioned %v, id %v; want the machine made again in place", planned["provisioned"], planned["id"])
	}
}

func TestOffersDataSource(t *testing.T) {
	h := newHarness(t)
	ds := h.p.DataSources["dstack_offers"].Schema().Block
	read := func(cfg map[string]any) *tfprotov6.ReadDataSourceResponse {
		obj := map[string]any{}
		for k, v := range cfg {
			obj[k] = v
		}
		resp, err := h.srv.ReadDataSource(context.Background(), &tfprotov6.ReadDataSourceRequest{TypeName: "dstack_offers", Config: h.encode(ds, obj)})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := read(map[string]any{"cpu": "1..", "memory": "64MB..", "disk": "1GB.."})
	if len(resp.Diagnostics) > 0 {
		t.Fatal(diagText(resp.Diagnostics))
	}
	got := h.decode(ds, resp.State)
	if l, _ := got["offers"].([]any); len(l) != 1 || l[0].(map[string]any)["backend"] != "local" {
		t.Errorf("offers of the local backend: %v", got["offers"])
	}
	resp = read(map[string]any{"gpu": "H100:8:4"})
	if len(resp.Diagnostics) != 1 || resp.Diagnostics[0].Attribute.String() != tfplugin.AttributePath(tfplugin.Path{"gpu"}).String() {
		t.Errorf("an invalid gpu: %s", diagText(resp.Diagnostics))
	}
}
