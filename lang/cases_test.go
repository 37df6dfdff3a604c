package lang_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

// update rewrites golden files (want.json, diags, testdata/render/*) in
// place. Review the diff like code: a golden file states what is correct,
// not what the code happens to do.
var update = flag.Bool("update", false, "rewrite golden files under testdata")

func updating() bool { return *update || os.Getenv("UPDATE_GOLDEN") == "1" }

// The sections of a case file.
const (
	yamlFile  = "config.dstack.yml"
	hclFile   = "config.dstack.hcl"
	wantFile  = "want.json"
	diagsFile = "diags"
)

// TestCases runs every case under testdata/cases/<kind>/<name>.txtar. A
// case holds the configuration in YAML and (usually) the same in HCL, and
// either the expected model in want.json, which both syntaxes must produce
// byte for byte (with equal content hashes), or the expected diagnostics,
// one per line:
//
//	<syntax> <line>:<column> <severity> <field or -> <summary>
//	    <detail>
//
// A valid case may have a diags section too, for its warnings. Any other
// section is written next to the configuration (for file() and friends).
func TestCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no cases under testdata/cases")
	}
	for _, file := range files {
		kind := filepath.Base(filepath.Dir(file))
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(kind+"/"+name, func(t *testing.T) {
			t.Parallel()
			if lang.NewSpec(lang.Kind(kind)) == nil {
				t.Fatalf("case folder %q is not a kind", kind)
			}
			runCase(t, file, lang.Kind(kind))
		})
	}
}

// caseResult is what one syntax of a case loaded to.
type caseResult struct {
	syntax string
	cfg    *lang.Config
	diags  lang.Diagnostics
}

func runCase(t *testing.T, file string, kind lang.Kind) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]byte{}
	for _, f := range ar.Files {
		if _, dup := sections[f.Name]; dup {
			t.Fatalf("section %q appears twice", f.Name)
		}
		sections[f.Name] = f.Data
	}
	want, hasWant := sections[wantFile]
	wantDiags, hasDiags := sections[diagsFile]
	if !hasWant && !hasDiags {
		t.Fatalf("a case needs %s or %s", wantFile, diagsFile)
	}
	if _, ok := sections[yamlFile]; !ok {
		t.Fatalf("a case needs %s", yamlFile)
	}

	dir := t.TempDir()
	for _, f := range ar.Files {
		switch f.Name {
		case yamlFile, hclFile, wantFile, diagsFile:
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var results []caseResult
	for _, s := range []struct{ syntax, name string }{{"yaml", yamlFile}, {"hcl", hclFile}} {
		src, ok := sections[s.name]
		if !ok {
			continue
		}
		p := filepath.Join(dir, s.name)
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := load.Files([]string{p}, load.Options{})
		results = append(results, caseResult{s.syntax, cfg, diags})
	}

	var gotDiags strings.Builder
	for _, r := range results {
		gotDiags.WriteString(formatDiags(r.syntax, r.diags, dir))
	}
	errs := false
	for _, r := range results {
		if r.diags.HasErrors() {
			errs = true
		}
	}

	newSections := map[string][]byte{}
	if hasWant {
		if errs {
			t.Errorf("a valid case loaded with errors:\n%s", gotDiags.String())
		}
		var first []byte
		for i, r := range results {
			got := modelJSON(t, r.cfg)
			if !hasKind(r.cfg, kind) {
				t.Errorf("%s: no %s among the resources of a case filed under %s", r.syntax, kind, kind)
			}
			if i == 0 {
				first = got
				if updating() {
					newSections[wantFile] = got
					continue
				}
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" && !updating() {
				t.Errorf("%s: model differs from %s (-want +got):\n%s", r.syntax, wantFile, diff)
			}
			if i > 0 {
				if diff := cmp.Diff(string(first), string(got)); diff != "" {
					t.Errorf("%s model differs from %s model (-%s +%s):\n%s", r.syntax, results[0].syntax, results[0].syntax, r.syntax, diff)
				}
				checkHashes(t, results[0], r)
			}
		}
		if len(results) < 2 {
			t.Logf("no %s: only YAML is checked", hclFile)
		}
	}
	if hasDiags || gotDiags.Len() > 0 {
		if !hasWant && !errs {
			t.Errorf("an invalid case loaded without errors")
		}
		got := gotDiags.String()
		if updating() {
			newSections[diagsFile] = []byte(got)
		} else if diff := cmp.Diff(strings.Split(string(wantDiags), "\n"), strings.Split(got, "\n")); diff != "" {
			t.Errorf("diagnostics differ (-want +got):\n%s", diff)
		}
	}
	if updating() {
		rewriteCase(t, file, ar, newSections)
	}
}

func hasKind(cfg *lang.Config, kind lang.Kind) bool {
	for addr := range cfg.Resources {
		if addr.Kind == kind {
			return true
		}
	}
	return false
}

// modelJSON renders what a configuration loaded to: the spec of its one
// resource, or an object of specs by address when there are several.
func modelJSON(t *testing.T, cfg *lang.Config) []byte {
	t.Helper()
	var v any
	rs := cfg.Sorted()
	if len(rs) == 1 {
		v = rs[0].Spec
	} else {
		m := map[string]lang.Spec{}
		for _, r := range rs {
			m[r.Address.String()] = r.Spec
		}
		v = m
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func checkHashes(t *testing.T, a, b caseResult) {
	t.Helper()
	var aa, ba []string
	for addr := range a.cfg.Resources {
		aa = append(aa, addr.String())
	}
	for addr := range b.cfg.Resources {
		ba = append(ba, addr.String())
	}
	slices.Sort(aa)
	slices.Sort(ba)
	if diff := cmp.Diff(aa, ba); diff != "" {
		t.Errorf("addresses differ between %s and %s (-%s +%s):\n%s", a.syntax, b.syntax, a.syntax, b.syntax, diff)
		return
	}
	for addr, ra := range a.cfg.Resources {
		rb := b.cfg.Resources[addr]
		if ra.Hash() == "" || ra.Hash() != rb.Hash() {
			t.Errorf("%s: %s hash %q, %s hash %q", addr, a.syntax, ra.Hash(), b.syntax, rb.Hash())
		}
		if ra.Syntax != a.syntax || rb.Syntax != b.syntax {
			t.Errorf("%s: Syntax %q and %q, want %q and %q", addr, ra.Syntax, rb.Syntax, a.syntax, b.syntax)
		}
	}
}

// formatDiags renders diagnostics one per line, the detail indented on the
// next line; the case's temporary directory reads as $DIR.
func formatDiags(syntax string, diags lang.Diagnostics, dir string) string {
	var b strings.Builder
	for _, d := range diags {
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		field := d.Field
		if field == "" {
			field = "-"
		}
		fmt.Fprintf(&b, "%s %s %s %s %s\n", syntax, pos, d.Severity, field, d.Summary)
		if d.Detail != "" {
			detail := strings.ReplaceAll(d.Detail, dir+string(filepath.Separator), "$DIR/")
			detail = strings.ReplaceAll(detail, "\n", "\n    ")
			fmt.Fprintf(&b, "    %s\n", detail)
		}
	}
	return b.String()
}

// rewriteCase writes the case back with its golden sections replaced; the
// other sections and the comment stay as they are.
func rewriteCase(t *testing.T, file string, ar *txtar.Archive, sections map[string][]byte) {
	t.Helper()
	out := &txtar.Archive{Comment: ar.Comment}
	written := map[string]bool{}
	for _, f := range ar.Files {
		if data, ok := sections[f.Name]; ok {
			written[f.Name] = true
			if len(data) == 0 && f.Name == diagsFile {
				continue // a valid case whose warnings went away
			}
			f.Data = data
		}
		out.Files = append(out.Files, f)
	}
	for _, name := range []string{wantFile, diagsFile} {
		if data, ok := sections[name]; ok && !written[name] && len(data) > 0 {
			out.Files = append(out.Files, txtar.File{Name: name, Data: data})
		}
	}
	formatted := txtar.Format(out)
	old, _ := os.ReadFile(file)
	if bytes.Equal(old, formatted) {
		return
	}
	if err := os.WriteFile(file, formatted, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %s", file)
}
