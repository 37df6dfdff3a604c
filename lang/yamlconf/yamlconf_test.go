package yamlconf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/yamlconf"
)

// parseAll parses src and decodes its documents, failing on any
// diagnostic.
func parseAll(t *testing.T, filename, src string) []*lang.Resource {
	t.Helper()
	raws, diags := yamlconf.Parse(filename, []byte(src))
	if len(diags) > 0 {
		t.Fatalf("Parse: %v", diags.Err())
	}
	var out []*lang.Resource
	for _, raw := range raws {
		r, ds := lang.DecodeResource(raw)
		if len(ds) > 0 {
			t.Fatalf("DecodeResource: %v", ds[0])
		}
		out = append(out, r)
	}
	return out
}

// node follows a path of mapping keys and list indexes ("0", "1").
func node(t *testing.T, n *lang.Node, path ...string) *lang.Node {
	t.Helper()
	for _, p := range path {
		switch n.Kind {
		case lang.MapNode:
			e, ok := n.Get(p)
			if !ok {
				t.Fatalf("no key %q", p)
			}
			n = e.Value
		case lang.ListNode:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(n.Items) {
				t.Fatalf("no item %q", p)
			}
			n = n.Items[i]
		default:
			t.Fatalf("cannot index %s with %q", n.Kind, p)
		}
	}
	return n
}

func TestMultiDocument(t *testing.T) {
	src := `type: fleet
nodes: 1
---
type: task
name: named
commands: [a]
---
# only a comment
---
type: task
commands: [b]
...
---
type: volume
backend: aws
region: us-east-1
size: 1GB
`
	rs := parseAll(t, "/work/train.dstack.yml", src)
	type doc struct {
		Addr      string
		Line      int // Range.Start.Line
		NameRange string
	}
	var got []doc
	for _, r := range rs {
		got = append(got, doc{r.Address.String(), r.Range.Start.Line, r.NameRange.String()})
		if r.Syntax != "yaml" {
			t.Errorf("%s: Syntax = %q, want yaml", r.Address, r.Syntax)
		}
	}
	want := []doc{
		// Unnamed documents take the file's name; later ones a suffix,
		// counting only the unnamed.
		{"fleet.train", 1, "/work/train.dstack.yml:1:1"},
		{"task.named", 4, "/work/train.dstack.yml:5:7"},
		{"task.train-2", 10, "/work/train.dstack.yml:10:1"},
		{"volume.train-3", 14, "/work/train.dstack.yml:14:1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
}

func TestEmptyDocuments(t *testing.T) {
	for _, src := range []string{
		"",
		"\n\n",
		"# just a comment\n",
		"---\n",
		"---\n---\n...\n",
		"---\n~\n---\nnull\n",
	} {
		t.Run(fmt.Sprintf("%q", src), func(t *testing.T) {
			raws, diags := yamlconf.Parse("empty.dstack.yml", []byte(src))
			if len(raws) != 0 || len(diags) != 0 {
				t.Errorf("Parse = %d documents, %v; want none", len(raws), diags)
			}
		})
	}
	// Empty documents do not use up a default name.
	rs := parseAll(t, "x.dstack.yml", "---\n---\ntype: task\ncommands: [a]\n---\n---\ntype: task\ncommands: [b]\n")
	if len(rs) != 2 || rs[0].Address.Name != "x" || rs[1].Address.Name != "x-2" {
		t.Errorf("names = %v, want x and x-2", rs)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	src := `type: task
name: merged
x-defaults: &defaults
  image: ubuntu
  commands: [default]
  env: &env
    A: "1"
    B: "2"
<<: *defaults
commands: [explicit]
---
type: task
name: merge-first
<<: [{image: first, shell: sh}, {image: second, shell: bash, user: u}]
commands: &cmds [b]
user: explicit
setup: *cmds
`
	raws, diags := yamlconf.Parse("m.dstack.yml", []byte(src))
	if len(diags) > 0 {
		t.Fatal(diags.Err())
	}
	// x-defaults is not a field; drop it as a user of anchors would in an
	// extension key, then decode.
	raws[0].Body = raws[0].Body.Without("x-defaults")
	var specs []*lang.Task
	for _, raw := range raws {
		r, ds := lang.DecodeResource(raw)
		if len(ds) > 0 {
			t.Fatalf("%v", ds.Err())
		}
		specs = append(specs, r.Spec.(*lang.Task))
	}
	a, b := specs[0], specs[1]
	// The explicit key wins even though the merge key comes first.
	if diff := cmp.Diff([]string{"explicit"}, a.Commands); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if a.Image != "ubuntu" || len(a.Env) != 2 {
		t.Errorf("merged image = %q, env = %v; want ubuntu and two variables", a.Image, a.Env)
	}
	// Earlier mappings of a merge list win over later ones; explicit keys
	// over both.
	if b.Image != "first" || b.Shell != "sh" || b.User != "explicit" {
		t.Errorf("merge list: image %q shell %q user %q; want first, sh, explicit", b.Image, b.Shell, b.User)
	}
	if diff := cmp.Diff([]string{"b"}, b.Setup); diff != "" {
		t.Errorf("aliased setup (-want +got):\n%s", diff)
	}
	// An alias is positioned where it is written, not at its anchor.
	alias := node(t, raws[1].Body, "setup")
	if got := alias.Range; got.Start.Line != 17 || got.Start.Column != 8 || got.End.Column != 13 {
		t.Errorf("alias range = %+v, want 17:8-17:13", got)
	}
	// A merged key keeps the range where the anchor's mapping wrote it.
	if e, _ := raws[0].Body.Get("image"); e.KeyRange.Start.Line != 4 {
		t.Errorf("merged key range = %v, want line 4", e.KeyRange)
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // line:column summary: detail
	}{
		{
			name: "merge of a scalar",
			src:  "type: task\nbase: &b 3\n<<: *b\n",
			want: "3:5 Invalid merge: A merge key (<<) takes a mapping or a list of mappings, got scalar.",
		},
		{
			name: "mapping key",
			src:  "type: task\n? [a, b]\n: c\n",
			want: "2:3 Invalid key: Mapping keys must be strings, got a list.",
		},
		{
			name: "alias bomb",
			src: "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
				"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
				"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
			// Expansion is depth first: the limit is hit inside b.
			want: "2:20 Invalid YAML: Too many alias expansions (over 10000).",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := yamlconf.Parse("e.dstack.yml", []byte(tt.src))
			if len(diags) != 1 || diags[0].Subject == nil {
				t.Fatalf("diags = %v, want one with a position", diags)
			}
			d := diags[0]
			got := fmt.Sprintf("%d:%d %s: %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary, d.Detail)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int
		detail    string // a substring of the detail
	}{
		{name: "bad indentation", src: "type: task\ncommands:\n  - a\n - b\n", line: 4, col: 2, detail: "Did not find expected key"},
		{name: "unclosed quote", src: "type: task\nname: \"abc\n", line: 3, col: 1, detail: "Found unexpected end of stream"},
		{name: "unclosed flow", src: "type: task\ncommands: [a, b\n", line: 3, col: 1, detail: "Did not find expected ',' or ']'"},
		{name: "tab indentation", src: "type: task\nenv:\n\tA: 1\n", line: 3, col: 1, detail: "Found character that cannot start any token"},
		{name: "undefined alias", src: "type: task\ncommands: *nope\n", line: 2, col: 11, detail: "Unknown anchor 'nope' referenced"},
		{name: "second document", src: "type: task\ncommands: [a]\n---\ntype: task\n  bad: [\n", line: 5, col: 6, detail: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raws, diags := yamlconf.Parse("s.dstack.yml", []byte(tt.src))
			if len(diags) != 1 {
				t.Fatalf("diags = %v, want one", diags)
			}
			d := diags[0]
			if d.Summary != "Invalid YAML" || d.Severity != lang.Error {
				t.Errorf("diagnostic = %s %q", d.Severity, d.Summary)
			}
			if d.Subject == nil {
				t.Fatalf("no position: %s", d.Detail)
			}
			if d.Subject.Start.Line != tt.line || d.Subject.Start.Column != tt.col {
				t.Errorf("position %d:%d, want %d:%d (%s)", d.Subject.Start.Line, d.Subject.Start.Column, tt.line, tt.col, d.Detail)
			}
			if off := d.Subject.Start.Byte; off > len(tt.src) {
				t.Errorf("byte offset %d is past the end (%d)", off, len(tt.src))
			}
			if !strings.Contains(d.Detail, tt.detail) || !strings.HasSuffix(d.Detail, ".") {
				t.Errorf("detail %q, want it to contain %q and end with a period", d.Detail, tt.detail)
			}
			// Documents before the broken one are kept; the stream
			// stops at the error.
			if want := strings.Count(tt.src[:d.Subject.Start.Byte], "---"); len(raws) != want {
				t.Errorf("%d documents before the error, want %d", len(raws), want)
			}
		})
	}
}

func TestScalarRanges(t *testing.T) {
	type pos struct{ Line, Col, Byte int }
	tests := []struct {
		name       string
		src        string
		path       []string
		start, end pos
	}{
		{name: "plain", src: "name: train\n", path: []string{"name"}, start: pos{1, 7, 6}, end: pos{1, 12, 11}},
		{name: "plain with spaces", src: "cmd: echo  hi  # c\n", path: []string{"cmd"}, start: pos{1, 6, 5}, end: pos{1, 14, 13}},
		{name: "integer", src: "nodes: 42\n", path: []string{"nodes"}, start: pos{1, 8, 7}, end: pos{1, 10, 9}},
		{name: "double quoted", src: "gpu: \"A100:2\"\n", path: []string{"gpu"}, start: pos{1, 6, 5}, end: pos{1, 14, 13}},
		{name: "double quoted escapes", src: "s: \"a\\\"b\\n\"\n", path: []string{"s"}, start: pos{1, 4, 3}, end: pos{1, 12, 11}},
		{name: "single quoted", src: "s: 'it''s'\n", path: []string{"s"}, start: pos{1, 4, 3}, end: pos{1, 11, 10}},
		{name: "empty quoted", src: "s: \"\"\n", path: []string{"s"}, start: pos{1, 4, 3}, end: pos{1, 6, 5}},
		{name: "unicode", src: "d: é\ns: \"ünï\"\n", path: []string{"s"}, start: pos{2, 4, 9}, end: pos{2, 9, 16}},
		{name: "flow list item", src: "l: [a, \"bc\", d]\n", path: []string{"l", "1"}, start: pos{1, 8, 7}, end: pos{1, 12, 11}},
		{name: "block list item", src: "l:\n  - x\n  - yy\n", path: []string{"l", "1"}, start: pos{3, 5, 13}, end: pos{3, 7, 15}},
		{name: "nested", src: "r:\n  gpu: H100:8\n", path: []string{"r", "gpu"}, start: pos{2, 8, 10}, end: pos{2, 14, 16}},
		{name: "literal block", src: "s: |\n  line one\n  line two\n", path: []string{"s"}, start: pos{1, 4, 3}, end: pos{1, 5, 4}},
		{name: "multi-line plain", src: "s: one\n  two\nt: x\n", path: []string{"s"}, start: pos{1, 4, 3}, end: pos{1, 7, 6}},
		{name: "crlf", src: "a: b\r\nname: train\r\n", path: []string{"name"}, start: pos{2, 7, 12}, end: pos{2, 12, 17}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raws, diags := yamlconf.Parse("r.dstack.yml", []byte(tt.src))
			if len(diags) > 0 || len(raws) != 1 {
				t.Fatalf("Parse = %d documents, %v", len(raws), diags.Err())
			}
			r := node(t, raws[0].Body, tt.path...).Range
			got := [2]pos{{r.Start.Line, r.Start.Column, r.Start.Byte}, {r.End.Line, r.End.Column, r.End.Byte}}
			if diff := cmp.Diff([2]pos{tt.start, tt.end}, got); diff != "" {
				t.Errorf("range of %v (-want +got):\n%s", tt.path, diff)
			}
			if r.Filename != "r.dstack.yml" {
				t.Errorf("Filename = %q", r.Filename)
			}
		})
	}
}

func TestKeyRangesAndTypes(t *testing.T) {
	src := "type: task\n\"quoted key\": 1.5\nflag: True\nnothing: ~\nn: 0x1F\n"
	raws, diags := yamlconf.Parse("k.dstack.yml", []byte(src))
	if len(diags) > 0 {
		t.Fatal(diags.Err())
	}
	body := raws[0].Body
	e, _ := body.Get("quoted key")
	if k := e.KeyRange; k.Start.Column != 1 || k.End.Column != 13 {
		t.Errorf("quoted key range = %d-%d, want 1-13", k.Start.Column, k.End.Column)
	}
	type scalar struct {
		Kind lang.NodeKind
		Type lang.ScalarType
		Text string
	}
	var got []scalar
	for _, k := range []string{"quoted key", "flag", "nothing", "n"} {
		n := node(t, body, k)
		got = append(got, scalar{n.Kind, n.Type, n.Text})
	}
	want := []scalar{
		{lang.ScalarNode, lang.Float, "1.5"},
		{lang.ScalarNode, lang.Bool, "true"}, // bools are normalised
		{lang.NullNode, lang.String, "~"},
		{lang.ScalarNode, lang.Int, "0x1F"}, // numbers keep their text
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scalars (-want +got):\n%s", diff)
	}
	// The document range runs from the first key to the end of the last
	// value.
	if r := raws[0].Range; r.Start.Line != 1 || r.End.Line != 5 || r.End.Column != 8 {
		t.Errorf("document range = %+v", r)
	}
}

func TestDefaultName(t *testing.T) {
	tests := []struct {
		file  string
		index int
		want  string
	}{
		{"train.dstack.yml", 0, "train"},
		{"train.dstack.yml", 1, "train-2"},
		{"dir/serve.dstack.yaml", 0, "serve"},
		{"fleet.yml", 0, "fleet"},
		{"infra.dstack.hcl", 2, "infra-3"},
		{"My_Config.dstack.yml", 0, "my-config"},
		{"--odd--.dstack.yml", 0, "odd"},
		{"2024-run.dstack.yml", 0, "run-2024-run"},
		{"/projects/llama/.dstack.yml", 0, "llama"},
		{"/projects/Llama 3/.dstack.yml", 1, "llama-3-2"},
		{strings.Repeat("a", 50) + ".dstack.yml", 0, strings.Repeat("a", 36)},
		{strings.Repeat("a", 35) + "-b.dstack.yml", 0, strings.Repeat("a", 35)},
		{"ü.dstack.yml", 0, "run"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s#%d", tt.file, tt.index), func(t *testing.T) {
			got := lang.DefaultName(tt.file, tt.index)
			if got != tt.want {
				t.Errorf("DefaultName(%q, %d) = %q, want %q", tt.file, tt.index, got, tt.want)
			}
			if !lang.ValidName(got) {
				t.Errorf("DefaultName(%q, %d) = %q is not a valid name", tt.file, tt.index, got)
			}
		})
	}
}

func TestNonMappingDocument(t *testing.T) {
	raws, diags := yamlconf.Parse("l.dstack.yml", []byte("- a\n- b\n"))
	if len(diags) > 0 || len(raws) != 1 {
		t.Fatalf("Parse = %d documents, %v", len(raws), diags)
	}
	if raws[0].DefaultName != "" {
		t.Errorf("a list document got default name %q", raws[0].DefaultName)
	}
	r, ds := lang.DecodeResource(raws[0])
	if r != nil || len(ds) != 1 || ds[0].Summary != "Invalid configuration document" {
		t.Errorf("DecodeResource = %v, %v", r, ds)
	}
}
