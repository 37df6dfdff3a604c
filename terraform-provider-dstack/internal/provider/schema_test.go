package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// TestEveryModelFieldIsInTheSchema: the schema is derived from the
// model, so every field the model accepts is an attribute or block of
// its resource, or listed as unsupported; a field added to the model
// appears here without a change to the provider.
func TestEveryModelFieldIsInTheSchema(t *testing.T) {
	unsupported := Unsupported()
	for _, k := range lang.Kinds {
		b := resourceSchema(k).Block
		for _, f := range lang.Fields(reflect.TypeOf(lang.NewSpec(k)).Elem()) {
			if f.Name == "type" || slices.Contains(unsupported, string(k)+"."+f.Name) {
				continue
			}
			_, isAttr := b.Attribute(f.Name)
			_, isBlock := b.NestedBlock(f.Name)
			if !isAttr && !isBlock {
				t.Errorf("%s: model field %q is not in the Terraform schema", k, f.Name)
			}
		}
	}
	if len(unsupported) > 0 {
		t.Errorf("model fields Terraform cannot say: %v", unsupported)
	}
}

func TestShapes(t *testing.T) {
	b := resourceSchema(lang.KindService).Block
	for _, tc := range []struct {
		path string
		want string // attribute type, or "block"/"block list"
	}{
		{"name", "string"}, {"port", "string"}, {"commands", "list(string)"}, {"env", "map(string)"},
		{"replicas", "dynamic"}, {"max_price", "number"}, {"auth", "bool"}, {"volumes", "list(string)"},
		{"resources", "block"}, {"scaling", "block"}, {"retry", "block"}, {"probes", "block list"},
		{"max_duration", "string"}, {"tags", "map(string)"},
	} {
		got := ""
		if a, ok := b.Attribute(tc.path); ok {
			got = a.Type.String()
		} else if nb, ok := b.NestedBlock(tc.path); ok {
			got = map[tfplugin.Nesting]string{tfplugin.Single: "block", tfplugin.ListNesting: "block list"}[nb.Nesting]
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.path, got, tc.want)
		}
	}
	res, _ := b.NestedBlock("resources")
	for _, f := range []string{"cpu", "memory", "shm_size", "gpu", "disk"} {
		if a, ok := res.Block.Attribute(f); !ok || a.Type.Kind != tfplugin.String {
			t.Errorf("resources.%s is not a string attribute", f)
		}
	}
	ra, _ := b.NestedBlock("registry_auth")
	if a, _ := ra.Block.Attribute("password"); !a.Sensitive {
		t.Error("registry_auth.password is not sensitive")
	}
}

// TestStructuredForms: the forms of the YAML that hold a structure (fleet
// nodes {min, target, max}, replica groups, backend_options) are
// written in Terraform too, decode into the same model, and render back
// to what was written.
func TestStructuredForms(t *testing.T) {
	fleetCfg := map[string]any{
		"name":            "pool",
		"nodes":           map[string]any{"min": 1.0, "target": 2.0, "max": 4.0},
		"backend_options": []any{map[string]any{"placement_group": "pg-1", "ebs": map[string]any{"iops": 3000.0}}},
	}
	fb := resourceSchema(lang.KindFleet).Block
	if a, _ := fb.Attribute("nodes"); a.Type.Kind != tfplugin.Dynamic {
		t.Fatalf("fleet nodes is %s, want dynamic", a.Type)
	}
	res, diags := decodeConfig(lang.KindFleet, fb, fleetCfg)
	if diags.HasErrors() {
		t.Fatalf("decode fleet: %v", diags)
	}
	f := res.Spec.(*lang.Fleet)
	if f.Nodes == nil || f.Nodes.Min != 1 || f.Nodes.Target == nil || *f.Nodes.Target != 2 || f.Nodes.Max == nil || *f.Nodes.Max != 4 {
		t.Errorf("nodes decoded as %+v", f.Nodes)
	}
	wantOpts := []map[string]any{{"placement_group": "pg-1", "ebs": map[string]any{"iops": 3000}}}
	if fmt.Sprint(wantOpts) != fmt.Sprint(f.BackendOptions) {
		t.Errorf("backend_options decoded as %v, want %v", f.BackendOptions, wantOpts)
	}
	got := specValue(res.Spec)
	for _, k := range []string{"nodes", "backend_options"} {
		if diff := cmp.Diff(fleetCfg[k], got[k]); diff != "" {
			t.Errorf("fleet %s renders differently (-config +rendered):\n%s", k, diff)
		}
	}

	// The other forms still decode: a number, a range.
	for _, nodes := range []any{2.0, "0..4"} {
		res, diags := decodeConfig(lang.KindFleet, fb, map[string]any{"name": "pool", "nodes": nodes})
		if diags.HasErrors() {
			t.Fatalf("decode nodes = %v: %v", nodes, diags)
		}
		if n := res.Spec.(*lang.Fleet).Nodes; n == nil || n.Target != nil {
			t.Errorf("nodes = %v decoded as %+v", nodes, n)
		}
	}
	// A bad object is refused on the attribute, by the model's checks.
	_, diags = decodeConfig(lang.KindFleet, fb, map[string]any{"name": "pool", "nodes": map[string]any{"min": 3.0, "max": 1.0}})
	if !diags.HasErrors() || cmp.Diff(tfplugin.Path{"nodes"}, diags[0].Path) != "" {
		t.Errorf("min above max: %v", diags)
	}

	svcCfg := map[string]any{
		"name": "llm", "port": "8000",
		"replicas": []any{
			map[string]any{"name": "prefill", "count": 2.0, "commands": []any{"serve --prefill"}, "resources": map[string]any{"gpu": "H100:1"}},
			map[string]any{"name": "decode", "count": "1..3", "commands": []any{"serve --decode"}, "image": nil,
				"scaling": map[string]any{"metric": "rps", "target": 5.0}},
		},
	}
	sb := resourceSchema(lang.KindService).Block
	res, diags = decodeConfig(lang.KindService, sb, svcCfg)
	if diags.HasErrors() {
		t.Fatalf("decode service: %v", diags)
	}
	s := res.Spec.(*lang.Service)
	if s.Replicas == nil || len(s.Replicas.Groups) != 2 {
		t.Fatalf("replicas decoded as %+v", s.Replicas)
	}
	g0, g1 := s.Replicas.Groups[0], s.Replicas.Groups[1]
	if g0.Name != "prefill" || g0.Count == nil || g0.Count.String() != "2" || g0.Resources == nil || len(g0.Commands) != 1 {
		t.Errorf("group 0: %+v", g0)
	}
	if g1.Name != "decode" || g1.Count == nil || g1.Count.String() != "1..3" || g1.Scaling == nil || g1.Scaling.Metric != "rps" {
		t.Errorf("group 1: %+v", g1)
	}
	again, diags := decodeConfig(lang.KindService, sb, specValue(res.Spec))
	if diags.HasErrors() {
		t.Fatalf("decode of the rendering: %v", diags)
	}
	if again.Hash() != res.Hash() {
		t.Error("the rendered replica groups hash differently")
	}
}

func TestAttrPath(t *testing.T) {
	b := resourceSchema(lang.KindService).Block
	fb := resourceSchema(lang.KindFleet).Block
	for _, tc := range []struct {
		block tfplugin.Block
		field string
		want  tfplugin.Path
	}{
		{b, "resources.gpu", tfplugin.Path{"resources", "gpu"}},
		{b, "ports[1]", nil}, // services have no ports: nothing to point at
		{b, "commands[2]", tfplugin.Path{"commands", 2}},
		{b, "env.HF_TOKEN", tfplugin.Path{"env", tfplugin.Key("HF_TOKEN")}},
		{b, "tags.kubernetes.io/name", tfplugin.Path{"tags", tfplugin.Key("kubernetes.io/name")}},
		{b, "probes[0].headers[1].name", tfplugin.Path{"probes", 0, "headers", 1, "name"}},
		{b, "scaling.target", tfplugin.Path{"scaling", "target"}},
		{fb, "ssh_config.hosts[3].internal_ip", tfplugin.Path{"ssh_config", "hosts", 3, "internal_ip"}},
		{fb, "", nil},
	} {
		if diff := cmp.Diff(tc.want, attrPath(tc.block, tc.field)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.field, diff)
		}
	}
}

// TestRoundTrip: a configuration written in Terraform decodes into the
// model, and the model renders back to the same Terraform values
// (what import writes), so an imported resource plans no change.
func TestRoundTrip(t *testing.T) {
	cfg := map[string]any{
		"name": "llm", "image": "vllm/vllm-openai", "commands": []any{"vllm serve"}, "port": "8000",
		"replicas": "1..4", "max_duration": "2h", "env": map[string]any{"A": "1"}, "volumes": []any{"data:/data"},
		"resources": map[string]any{"gpu": "H100:8", "memory": "64GB..", "cpu": nil, "disk": nil, "shm_size": nil},
		"scaling":   map[string]any{"metric": "rps", "target": 10.0, "window": nil, "scale_up_delay": nil, "scale_down_delay": nil},
		"probes":    []any{},
	}
	b := resourceSchema(lang.KindService).Block
	res, diags := decodeConfig(lang.KindService, b, cfg)
	if diags.HasErrors() {
		t.Fatalf("decode: %v", diags)
	}
	got := specValue(res.Spec)
	for k, want := range cfg {
		if diff := cmp.Diff(want, got[k]); diff != "" {
			t.Errorf("%s (-config +rendered):\n%s", k, diff)
		}
	}
	again, diags := decodeConfig(lang.KindService, b, got)
	if diags.HasErrors() {
		t.Fatalf("decode of the rendering: %v", diags)
	}
	if again.Hash() != res.Hash() {
		t.Error("the rendered configuration hashes differently")
	}
}

func TestCredentials(t *testing.T) {
	home := t.TempDir()
	envOf := func(vars map[string]string) environ {
		return environ{home: home, lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	}
	backend := func(typ string, creds map[string]any) map[string]any {
		return map[string]any{"backend": []any{map[string]any{"type": typ, "credentials": creds}}}
	}
	for _, tc := range []struct {
		name     string
		cfg      map[string]any
		env      map[string]string
		wantFrom string
		wantErr  tfplugin.Path
	}{
		{name: "local by default", cfg: map[string]any{}, wantFrom: "local=this machine"},
		{name: "aws from the environment", cfg: backend("aws", nil), env: map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"},
			wantFrom: "aws=environment variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"},
		{name: "aws from the block", cfg: backend("aws", map[string]any{"access_key": "a"}), wantFrom: "aws=the provider configuration"},
		{name: "aws without credentials", cfg: backend("aws", nil), env: map[string]string{"AWS_ACCESS_KEY_ID": "only half"},
			wantErr: tfplugin.Path{"backend", 0, "credentials"}},
		{name: "unknown backend", cfg: backend("awz", nil), wantErr: tfplugin.Path{"backend", 0, "type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, diags := resolve(tc.cfg, envOf(tc.env))
			if tc.wantErr != nil {
				if len(diags) != 1 || cmp.Diff(tc.wantErr, diags[0].Path) != "" {
					t.Fatalf("diagnostics %v, want one at %v", diags, tc.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var got string
			for _, b := range s.backends {
				got = b + "=" + s.credentials[b]
			}
			if got != tc.wantFrom {
				t.Errorf("credentials: %q, want %q", got, tc.wantFrom)
			}
		})
	}
	// A credential file in the home directory counts too.
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte("[default]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, diags := resolve(backend("aws", nil), envOf(nil))
	if diags.HasErrors() || s.credentials["aws"] != filepath.Join(home, ".aws", "credentials") {
		t.Errorf("from the credentials file: %v %v", s.credentials, diags)
	}
}

// TestImportDocAgreesWithImport: every resource documents its import
// from the provider's store; those Import also takes from the dstack
// CLI's state (fleets and volumes) say so, and the others do not.
func TestImportDocAgreesWithImport(t *testing.T) {
	p := New(Options{})
	for _, k := range lang.Kinds {
		r := p.Resources[TypeName(k)].(*resource)
		doc := r.ImportDoc()
		if !strings.Contains(doc, "the provider's store still holds its record") {
			t.Errorf("%s: the import doc does not say it imports from the store:\n%s", k, doc)
		}
		if fromCLI := strings.Contains(doc, "made with the dstack CLI"); fromCLI != importable(k) {
			t.Errorf("%s: import from the CLI documented %v, importable %v", k, fromCLI, importable(k))
		}
	}
}

// TestIDDescriptionNamesTheKind: each resource's id says the form of
// its own addresses.
func TestIDDescriptionNamesTheKind(t *testing.T) {
	for _, k := range lang.Kinds {
		a, ok := resourceSchema(k).Block.Attribute(attrID)
		if want := "`" + string(k) + ".NAME`"; !ok || !strings.Contains(a.Description, want) {
			t.Errorf("%s: id description %q lacks %s", k, a.Description, want)
		}
	}
}

// TestTimeouts: every resource has a timeouts block with create, update
// and delete, each described; a value that is not a positive duration
// is refused on its attribute; a set timeout bounds the operation's
// context and the error says which timeout passed.
func TestTimeouts(t *testing.T) {
	for _, k := range lang.Kinds {
		nb, ok := resourceSchema(k).Block.NestedBlock("timeouts")
		if !ok || nb.Nesting != tfplugin.Single || nb.Block.Description == "" {
			t.Fatalf("%s: no described timeouts block", k)
		}
		for _, op := range []string{"create", "update", "delete"} {
			if a, ok := nb.Block.Attribute(op); !ok || a.Type.Kind != tfplugin.String || !a.Optional || a.Description == "" {
				t.Errorf("%s: timeouts.%s is %+v", k, op, a)
			}
		}
	}
	p := New(Options{})
	r := p.Resources[TypeName(lang.KindFleet)].(*resource)
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"30m", true}, {"1h30m", true}, {"soon", false}, {"-5s", false}, {"0s", false}} {
		diags := r.Validate(context.Background(), map[string]any{"name": "pool", "nodes": 1.0, "timeouts": map[string]any{"update": tc.value}})
		if tc.ok == diags.HasErrors() {
			t.Errorf("update = %q: %v", tc.value, diags)
			continue
		}
		if !tc.ok && cmp.Diff(tfplugin.Path{"timeouts", "update"}, diags[0].Path) != "" {
			t.Errorf("update = %q: the error is at %v", tc.value, diags[0].Path)
		}
	}
	ctx, cancel := withTimeout(context.Background(), map[string]any{"timeouts": map[string]any{"create": "10ms"}}, opCreate, "fleet.pool")
	defer cancel()
	<-ctx.Done()
	diags := timedOut(ctx, tfplugin.Diagnostics{{Severity: tfplugin.Error, Summary: "Applying fleet.pool failed", Detail: "context deadline exceeded"}})
	if len(diags) != 1 || diags[0].Summary != "Create of fleet.pool timed out after 10ms (timeouts.create)" ||
		!strings.Contains(diags[0].Detail, "Applying fleet.pool failed: context deadline exceeded") {
		t.Errorf("timed-out diagnostics: %+v", diags)
	}
	ctx, cancel = withTimeout(context.Background(), map[string]any{"timeouts": map[string]any{"create": "1h"}}, opDelete, "fleet.pool")
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Error("a delete got the create timeout")
	}
}

// TestBackendCredentialsReachTheBackend: a backend block's credentials
// are the backend's settings (aws reads them as its access_key creds),
// not only a note of where they came from.
func TestBackendCredentialsReachTheBackend(t *testing.T) {
	cfg := map[string]any{"backend": []any{map[string]any{"type": "aws",
		"credentials": map[string]any{"access_key": "AKIABLOCK", "secret_key": "block-secret"}}}}
	s, diags := resolve(cfg, environ{home: t.TempDir(), lookup: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	creds, _ := s.backendConfig["aws"]["creds"].(map[string]any)
	if creds["type"] != "access_key" || creds["access_key"] != "AKIABLOCK" || creds["secret_key"] != "block-secret" {
		t.Fatalf("the aws backend's settings: %v", s.backendConfig["aws"])
	}
}
