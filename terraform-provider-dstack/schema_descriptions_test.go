package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/provider"
)

// providerSchemas is the part of `terraform providers schema -json`
// the test reads.
type providerSchemas struct {
	ProviderSchemas map[string]struct {
		Provider          schemaJSON            `json:"provider"`
		ResourceSchemas   map[string]schemaJSON `json:"resource_schemas"`
		DataSourceSchemas map[string]schemaJSON `json:"data_source_schemas"`
	} `json:"provider_schemas"`
}

type schemaJSON struct {
	Block blockJSON `json:"block"`
}

type blockJSON struct {
	Attributes map[string]struct {
		Description string `json:"description"`
		Sensitive   bool   `json:"sensitive"`
	} `json:"attributes"`
	BlockTypes map[string]struct {
		Block blockJSON `json:"block"`
	} `json:"block_types"`
	Description string `json:"description"`
}

// undescribed lists the paths of the attributes and nested blocks of b
// (nested ones included) that have no description.
func undescribed(b blockJSON, prefix string, out *[]string) {
	for name, a := range b.Attributes {
		if a.Description == "" {
			*out = append(*out, prefix+name)
		}
	}
	for name, nb := range b.BlockTypes {
		if nb.Block.Description == "" {
			*out = append(*out, prefix+name)
		}
		undescribed(nb.Block, prefix+name+".", out)
	}
}

// sensitive lists the paths of the sensitive attributes of b.
func sensitive(b blockJSON, prefix string, out *[]string) {
	for name, a := range b.Attributes {
		if a.Sensitive {
			*out = append(*out, prefix+name)
		}
	}
	for name, nb := range b.BlockTypes {
		sensitive(nb.Block, prefix+name+".", out)
	}
}

// schemaFromTerraform builds the provider and asks the real terraform
// CLI (or tofu, see cliUnderTest) for its schema, through dev_overrides.
// The schema is keyed by the provider's address, whichever registry host
// the CLI puts before dstackai/dstack.
func schemaFromTerraform(t *testing.T) providerSchemas {
	cli := cliUnderTest(t)
	bin := cli.bin
	root := t.TempDir()
	plugins := filepath.Join(root, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "terraform-provider-dstack"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, out)
	}
	rc := filepath.Join(root, "terraform.rc")
	if err := os.WriteFile(rc, []byte("provider_installation {\n  dev_overrides {\n    \"dstackai/dstack\" = \""+plugins+"\"\n  }\n  direct {}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(root, "module")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(module, "main.tf"), []byte("terraform {\n  required_providers {\n    dstack = { source = \"dstackai/dstack\" }\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "providers", "schema", "-json")
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("terraform providers schema -json: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var s providerSchemas
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("decoding the schema: %v\n%s", err, stdout.String())
	}
	if got := cli.providerAddress(); got != address {
		p, ok := s.ProviderSchemas[got]
		if !ok {
			t.Fatalf("%s reports no schema of %s", cli.name, got)
		}
		delete(s.ProviderSchemas, got)
		s.ProviderSchemas[address] = p
	}
	return s
}

// TestEveryAttributeIsDescribed: every attribute and nested block of
// the provider, of every resource and of every data source has a
// description in the schema terraform reads (what the registry docs
// and editors show).
func TestEveryAttributeIsDescribed(t *testing.T) {
	s := schemaFromTerraform(t)
	p, ok := s.ProviderSchemas[address]
	if !ok {
		t.Fatalf("terraform reports no schema of %s", address)
	}
	check := func(what string, sc schemaJSON) {
		var missing []string
		undescribed(sc.Block, "", &missing)
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s: %s has no description", what, m)
		}
	}
	check("provider", p.Provider)
	if len(p.ResourceSchemas) == 0 || len(p.DataSourceSchemas) == 0 {
		t.Fatalf("terraform reports %d resources and %d data sources", len(p.ResourceSchemas), len(p.DataSourceSchemas))
	}
	for name, sc := range p.ResourceSchemas {
		if sc.Block.Description == "" {
			t.Errorf("%s has no description", name)
		}
		check(name, sc)
	}
	for name, sc := range p.DataSourceSchemas {
		if sc.Block.Description == "" {
			t.Errorf("%s has no description", name)
		}
		check(name, sc)
	}
}

// taggedSensitive lists the paths of the fields of model type t (nested
// ones included) that the model tags sensitive.
func taggedSensitive(t reflect.Type, prefix string, out *[]string, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for _, f := range lang.Fields(t) {
		if f.Sensitive {
			*out = append(*out, prefix+f.Name)
			continue
		}
		taggedSensitive(f.Type, prefix+f.Name+".", out, seen)
	}
}

// TestSensitiveAttributes: the attributes terraform masks are exactly
// the fields the model tags sensitive, and the provider's credentials
// (a backend's, and the settings of the state and store backends).
func TestSensitiveAttributes(t *testing.T) {
	s := schemaFromTerraform(t)
	p := s.ProviderSchemas[address]
	var got []string
	sensitive(p.Provider.Block, "", &got)
	sort.Strings(got)
	if want := []string{"backend.credentials", "state_config", "store_config"}; !slices.Equal(got, want) {
		t.Errorf("provider: sensitive attributes %q, want %q", got, want)
	}
	for _, k := range lang.Kinds {
		name := provider.TypeName(k)
		sc, ok := p.ResourceSchemas[name]
		if !ok {
			t.Errorf("terraform reports no schema of %s", name)
			continue
		}
		var want []string
		taggedSensitive(reflect.TypeOf(lang.NewSpec(k)), "", &want, map[reflect.Type]bool{})
		sort.Strings(want)
		var got []string
		sensitive(sc.Block, "", &got)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: sensitive attributes %q, want those the model tags: %q", name, got, want)
		}
		if k == lang.KindService && !slices.Contains(got, "registry_auth.password") {
			t.Errorf("%s: registry_auth.password is not sensitive", name)
		}
	}
}
