package lang_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/tools/txtar"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

// roundTripOpts compares a loaded model with the one read back from its
// JSON. Source positions are not part of the stored form; nor is the
// order of env variables (the JSON object is sorted by name, so that the
// same environment hashes the same however it is written); an empty list
// and a missing one are the same (omitempty).
var roundTripOpts = cmp.Options{
	cmpopts.IgnoreTypes(lang.Range{}),
	cmpopts.EquateEmpty(),
	cmp.FilterValues(func(a, b lang.Env) bool { return len(a)+len(b) > 0 },
		cmp.Transformer("sortEnv", func(e lang.Env) lang.Env {
			out := slices.Clone(e)
			slices.SortFunc(out, func(a, b lang.EnvVar) int { return strings.Compare(a.Name, b.Name) })
			return out
		})),
}

// checkRoundTrip checks that every resource of cfg reads back from its
// JSON (what state stores and providers are handed) as the same model,
// and that the JSON written again is the same bytes.
func checkRoundTrip(t *testing.T, cfg *lang.Config) {
	t.Helper()
	for _, r := range cfg.Sorted() {
		b, err := json.Marshal(r.Spec)
		if err != nil {
			t.Fatalf("%s: marshal: %v", r.Address, err)
		}
		got, err := lang.DecodeSpec(b)
		if err != nil {
			t.Errorf("%s (%s): %v\n%s", r.Address, r.Syntax, err, b)
			continue
		}
		if got.Kind() != r.Address.Kind {
			t.Errorf("%s: read back as a %s", r.Address, got.Kind())
		}
		if diff := cmp.Diff(r.Spec, got, roundTripOpts); diff != "" {
			t.Errorf("%s (%s): the model read back from its JSON differs (-loaded +read back):\n%s\nJSON: %s", r.Address, r.Syntax, diff, b)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("%s: marshal again: %v", r.Address, err)
		}
		if string(again) != string(b) {
			t.Errorf("%s (%s): JSON written again differs:\n first %s\nsecond %s", r.Address, r.Syntax, b, again)
		}
	}
}

// TestRoundTripCases loads every valid case under testdata/cases, in YAML
// and in HCL, and reads each resource back from its JSON.
func TestRoundTripCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	checked := 0
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		var configs []string
		for _, f := range ar.Files {
			switch f.Name {
			case wantFile, diagsFile:
				continue
			case yamlFile, hclFile:
				configs = append(configs, filepath.Join(dir, f.Name))
			}
			p := filepath.Join(dir, filepath.FromSlash(f.Name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range configs {
			name := strings.TrimPrefix(file, filepath.Join("testdata", "cases")+"/") + "/" + filepath.Ext(c)[1:]
			t.Run(name, func(t *testing.T) {
				cfg, diags := load.Files([]string{c}, load.Options{})
				if diags.HasErrors() {
					t.Skip("an invalid case")
				}
				checkRoundTrip(t, cfg)
				checked++
			})
		}
	}
	if checked < 100 {
		t.Errorf("checked %d valid configurations, want the cases' (at least 100)", checked)
	}
}

// TestRoundTripExamples does the same for every example under examples/.
func TestRoundTripExamples(t *testing.T) {
	root := filepath.Join("..", "examples")
	dirs, err := load.ConfigDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 12 {
		t.Fatalf("found %d example configurations, want at least 12", len(dirs))
	}
	syntaxes := map[string]bool{}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			cfg, diags := load.Path(dir, load.Options{Environ: os.Environ()})
			if diags.HasErrors() {
				t.Fatalf("%s: %v", dir, diags[0].Error())
			}
			for _, r := range cfg.Resources {
				syntaxes[r.Syntax] = true
			}
			checkRoundTrip(t, cfg)
		})
	}
	if !syntaxes["yaml"] || !syntaxes["hcl"] {
		t.Errorf("examples checked in %v, want YAML and HCL", syntaxes)
	}
}

// TestDecodeSpecErrors: what cannot be a stored spec is an error naming
// the problem, never a half-read model.
func TestDecodeSpecErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"name":"x"}`:                                `no "type"`,
		`{"type":"cluster"}`:                          `unknown type "cluster"`,
		`[1]`:                                         "reading a stored configuration",
		`{"type":"fleet","blocks":"some"}`:            `"some"`,
		`{"type":"fleet","blocks":-1}`:                "blocks",
		`{"type":"service","https":"maybe"}`:          "https",
		`{"type":"service","gateway":"Bad Name"}`:     "invalid gateway name",
		`{"type":"task","env":{"1X":"a"}}`:            `invalid environment variable name "1X"`,
		`{"type":"task","env":["A=1","A=2"]}`:         `duplicate environment variable "A"`,
		`{"type":"task","env":{"A":{"b":1}}}`:         "want a string or null",
		`{"type":"service","replicas":"4..1"}`:        "replicas",
		`{"type":"service","replicas":{"min":"x"}}`:   "replicas",
		`{"type":"task","schedule":{"cron":[1]}}`:     "want a string or a list of strings",
		`{"type":"fleet","ssh_config":{"hosts":"x"}}`: "ssh_config.hosts",
	} {
		_, err := lang.DecodeSpec([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeSpec(%s) = %v, want an error with %q", in, err, want)
		}
	}
}

// TestDecodeSpecForms: the other forms the YAML accepts read as the same
// model as the form MarshalJSON writes.
func TestDecodeSpecForms(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{`{"type":"service","gateway":"team/gw"}`, `{"type":"service","gateway":{"project":"team","name":"gw"}}`},
		{`{"type":"service","replicas":"1..4"}`, `{"type":"service","replicas":{"min":1,"max":4}}`},
		{`{"type":"service","replicas":"2"}`, `{"type":"service","replicas":2}`},
		{`{"type":"task","env":{"A":"1","B":null,"C":"true"}}`, `{"type":"task","env":["A=1","B","C=true"]}`},
		{`{"type":"task","env":{"A":"1","C":"true"}}`, `{"type":"task","env":{"A":1,"C":true}}`},
		{`{"type":"task","schedule":{"cron":["0 * * * *"]}}`, `{"type":"task","schedule":{"cron":"0 * * * *"}}`},
	} {
		a, err := lang.DecodeSpec([]byte(c.a))
		if err != nil {
			t.Fatalf("%s: %v", c.a, err)
		}
		b, err := lang.DecodeSpec([]byte(c.b))
		if err != nil {
			t.Fatalf("%s: %v", c.b, err)
		}
		if diff := cmp.Diff(a, b, roundTripOpts); diff != "" {
			t.Errorf("%s and %s read differently:\n%s", c.a, c.b, diff)
		}
	}
	// The env keeps the order its JSON object is written in.
	s, err := lang.DecodeSpec([]byte(`{"type":"task","env":{"Z":"1","A":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	env := s.(*lang.Task).Env
	if len(env) != 2 || env[0].Name != "Z" || *env[0].Value != "1" || env[1].Name != "A" || env[1].Value != nil {
		t.Errorf("env read as %+v", env)
	}
}
