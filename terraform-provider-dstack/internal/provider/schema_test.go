package provider

import (
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
	want := []string{"task.backend_options", "service.backend_options", "dev-environment.backend_options", "fleet.backend_options"}
	slices.Sort(want)
	got := slices.Clone(unsupported)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unsupported fields (-want +got):\n%s", diff)
	}
}

func TestShapes(t *testing.T) {
	b := resourceSchema(lang.KindService).Block
	for _, tc := range []struct {
		path string
		want string // attribute type, or "block"/"block list"
	}{
		{"name", "string"}, {"port", "string"}, {"commands", "list(string)"}, {"env", "map(string)"},
		{"replicas", "string"}, {"max_price", "number"}, {"auth", "bool"}, {"volumes", "list(string)"},
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
