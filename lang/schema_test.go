package lang_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/dstackai/dstack-go/lang"
)

// TestSchemaAgreesWithDecoder checks the JSON Schema that editors use
// against the decoder: every example document is valid under the schema,
// and documents the decoder rejects for an unknown field, a wrong type or
// a bad enum value are rejected by the schema too.
func TestSchemaAgreesWithDecoder(t *testing.T) {
	raw, err := lang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(lang.SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(lang.SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}

	files, _ := filepath.Glob("../examples/*/*.yml")
	more, _ := filepath.Glob("../examples/*/.dstack.yml")
	files = append(files, more...)
	if len(files) < 10 {
		t.Fatalf("found only %d example files", len(files))
	}
	for _, f := range files {
		for i, d := range yamlDocs(t, f) {
			if err := sch.Validate(d); err != nil {
				t.Errorf("%s document %d is valid for dstack but not for the schema: %v", f, i, err)
			}
		}
	}

	for _, bad := range []string{
		"type: task\ncommands: [x]\nimagee: y\n",
		"type: task\ncommands: x\n",
		"type: task\ncommands: [x]\nspot_policy: sometimes\n",
		"type: service\ncommands: [x]\n",
		"type: gpu-box\n",
	} {
		d := yamlDocs(t, writeTemp(t, bad))[0]
		if err := sch.Validate(d); err == nil {
			t.Errorf("the schema accepts a document the decoder rejects:\n%s", bad)
		}
	}
}

func writeTemp(t *testing.T, src string) string {
	p := filepath.Join(t.TempDir(), "x.dstack.yml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// yamlDocs reads each YAML document as the JSON value an editor's
// language server would validate.
func yamlDocs(t *testing.T, path string) []any {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
}

// TestEveryFieldIsDescribed: every field of every kind, nested ones
// included, has a description (its jsonschema_description tag). The
// JSON Schema and the Terraform provider's schema both show it.
func TestEveryFieldIsDescribed(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range lang.Fields(typ) {
			// Untagged fields are a form's Go value (GatewayRef, HTTPS,
			// Env), not fields written in configurations.
			if _, written := typ.FieldByIndex(f.Index).Tag.Lookup("json"); !written {
				continue
			}
			if f.Description == "" {
				t.Errorf("%s.%s (%s) has no description", path, f.Name, typ)
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	for _, k := range lang.Kinds {
		walk(reflect.TypeOf(lang.NewSpec(k)), string(k))
	}
	// Replica groups are written in replicas, whose Go value is a form.
	walk(reflect.TypeFor[lang.ReplicaGroup](), "service.replicas[]")
	if len(seen) < 20 {
		t.Errorf("walked only %d model types", len(seen))
	}
}
