package interp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExpand runs dstack's interpolator cases (its test_interpolator.py)
// and the edges of the grammar: a namespace "run" with args=qwerty and
// the secrets namespace left unknown.
func TestExpand(t *testing.T) {
	vars := map[string]string{"run.args": "qwerty", "env.A": "a", "env.B_2": "b"}
	lookup := func(r Ref) (string, bool) { v, ok := vars[r.String()]; return v, ok }
	tests := []struct {
		name, in, want string
		missing        []string
		wantErr        string
	}{
		{name: "empty", in: "", want: ""},
		{name: "bash", in: "${ENV}", want: "${ENV}"},
		{name: "escaped dollar", in: "$${{ENV}}", want: "${{ENV}}"},
		{name: "escaped dollar in the middle", in: "echo $${{ENV}}", want: "echo ${{ENV}}"},
		{name: "args", in: "${{ run.args }}", want: "qwerty"},
		{name: "no spaces", in: "${{run.args}}", want: "qwerty"},
		{name: "many spaces and tabs", in: "${{ \t run.args   }}", want: "qwerty"},
		{name: "twice with text", in: "x${{ env.A }}-${{env.B_2}}y", want: "xa-by"},
		{name: "missing", in: "${{ env.name }}", want: "", missing: []string{"env.name"}},
		{name: "missing secret left out", in: "a${{ secrets.password  }}b", want: "ab", missing: []string{"secrets.password"}},
		{name: "lone dollar", in: "cost $5 and $", want: "cost $5 and $"},
		{name: "double dollar is one", in: "pid $$", want: "pid $"},
		{name: "triple dollar then ref", in: "$$${{ run.args }}", want: "$qwerty"},
		{name: "single brace", in: "${ run.args }", want: "${ run.args }"},
		{name: "unclosed", in: "${{ secrets.password }", wantErr: "no closing }}"},
		{name: "unclosed at end", in: "x ${{", wantErr: "no closing }}"},
		{name: "dash", in: "${{ secrets.pass-word }}", wantErr: `illegal reference name "secrets.pass-word"`},
		{name: "no namespace", in: "${{ .password }}", wantErr: "illegal reference name"},
		{name: "no name", in: "${{ password. }}", wantErr: "illegal reference name"},
		{name: "two dots", in: "${{ secrets.password.hash }}", wantErr: "illegal reference name"},
		{name: "starts with a digit", in: "${{ secrets.007 }}", wantErr: "illegal reference name"},
		{name: "no dot", in: "${{ password }}", wantErr: "illegal reference name"},
		{name: "empty reference", in: "${{}}", wantErr: `illegal reference name ""`},
		{name: "groups are not ours", in: "${{ groups[0].nodes[0].IP_ADDRESS }}", wantErr: "illegal reference name"},
		{name: "unicode around", in: "é${{ env.A }}ü", want: "éaü"},
		{name: "closing inside text after", in: "${{ env.A }}}}", want: "a}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing, err := Expand(tt.in, lookup)
			if tt.wantErr != "" {
				var se *SyntaxError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &se) {
					t.Fatalf("Expand(%q) = %q, %v; want a *SyntaxError containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand(%q): %v", tt.in, err)
			}
			var names []string
			for _, r := range missing {
				names = append(names, r.String())
			}
			if got != tt.want || !cmp.Equal(names, tt.missing) {
				t.Fatalf("Expand(%q) = %q, missing %v; want %q, missing %v", tt.in, got, names, tt.want, tt.missing)
			}
		})
	}
}

func TestRefsOffsets(t *testing.T) {
	s := "a ${{ secrets.x }} $${{ no.ref }} ${{env.Y}}"
	refs, err := Refs(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 {
		t.Fatalf("refs %+v, want 2", refs)
	}
	for _, r := range refs {
		if got := s[r.Start:r.End]; !strings.HasPrefix(got, "${{") || !strings.HasSuffix(got, "}}") {
			t.Errorf("ref %s spans %q", r, got)
		}
	}
	if refs[0].String() != "secrets.x" || refs[1].String() != "env.Y" {
		t.Fatalf("refs %v", refs)
	}
}

// TestCheckSpec: which fields take which namespaces, as dstack has it
// (secrets in env and registry_auth; env in registry_auth and probes;
// dstack.node_rank/job_num in volume names; run.args in commands), plus
// env and dstack.* in env values.
func TestCheckSpec(t *testing.T) {
	tests := []struct {
		name string
		spec string
		run  bool
		want []string // "path: summary" of each problem
	}{
		{name: "secrets and env in env", run: true,
			spec: `{"env":{"TOKEN":"${{ secrets.hf_token }}","X":"${{ env.FOO }}","FOO":null,"R":"${{ dstack.node_rank }}/${{dstack.gpus_num}}"}}`},
		{name: "registry auth", run: true,
			spec: `{"env":{"U":"bob"},"registry_auth":{"username":"${{ env.U }}","password":"${{ secrets.pw }}"}}`},
		{name: "probes take env only", run: true,
			spec: `{"env":{"K":"k"},"probes":[{"url":"/h?k=${{ env.K }}","headers":[{"name":"A","value":"${{ secrets.k }}"}]}]}`,
			want: []string{"probes[0].headers[0].value: ${{ secrets.k }} is not interpolated in probes[0].headers[0].value"}},
		{name: "volume names", run: true,
			spec: `{"volumes":[{"name":["data-${{ dstack.node_rank }}","d-${{ dstack.job_num }}"],"path":"/d"},{"name":["x-${{ dstack.nodes_num }}"],"path":"/x"},{"name":"one-${{ dstack.node_rank }}","path":"/o"}]}`,
			want: []string{"volumes[1].name[0]: Unknown reference dstack.nodes_num in volumes[1].name[0]"}},
		{name: "secret in commands", run: true,
			spec: `{"commands":["echo ${{ run.args }}","echo ${{ secrets.t }}"]}`,
			want: []string{"commands[1]: ${{ secrets.t }} is not interpolated in commands[1]"}},
		{name: "unknown namespace", run: true,
			spec: `{"env":{"A":"${{ unknown.namespace }}"}}`,
			want: []string{`env.A: Unknown namespace "unknown" in env.A`}},
		{name: "unknown dstack name", run: true,
			spec: `{"env":{"A":"${{ dstack.var }}"}}`,
			want: []string{"env.A: Unknown reference dstack.var in env.A"}},
		{name: "env not in the run's env", run: true,
			spec: `{"registry_auth":{"username":"${{ env.MISSING }}","password":"p"}}`,
			want: []string{"registry_auth.username: Unknown reference env.MISSING in registry_auth.username"}},
		{name: "image takes none", run: true,
			spec: `{"image":"${{ env.IMAGE }}","env":{"IMAGE":"x"}}`,
			want: []string{"image: ${{ env.IMAGE }} is not interpolated in image"}},
		{name: "escaped anywhere is fine", run: true,
			spec: `{"image":"$${{ x }}","commands":["echo $${{ secrets.t }}"]}`},
		{name: "syntax", run: true,
			spec: `{"env":{"A":"${{ secrets.a-b }}"}}`,
			want: []string{"env.A: Invalid reference in env.A"}},
		{name: "env cycle", run: true,
			spec: `{"env":{"A":"${{ env.B }}","B":"x${{ env.A }}"}}`,
			want: []string{"env.A: Invalid reference in env.A"}},
		{name: "fleets take none", run: false,
			spec: `{"env":{"A":"${{ secrets.x }}"}}`,
			want: []string{"env.A: ${{ secrets.x }} is not interpolated in env.A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs, _, err := CheckSpec([]byte(tt.spec), tt.run)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range probs {
				got = append(got, p.Path+": "+p.Summary)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSuggestions: an unknown namespace or name one typo away from a known
// one is named in the detail.
func TestSuggestions(t *testing.T) {
	probs, _, err := CheckSpec([]byte(`{"env":{"FOO":"x","A":"${{ secret.t }}","B":"${{ env.FOOO }}","C":"${{ dstack.node_rnak }}"}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.Path+": "+p.Detail[:strings.Index(p.Detail, "?")+1])
	}
	want := []string{"env.A: Did you mean secrets.t?", "env.B: Did you mean env.FOO?", "env.C: Did you mean dstack.node_rank?"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("suggestions (-want +got):\n%s", diff)
	}
}

func TestExpandSpec(t *testing.T) {
	spec := `{"type":"task","image":"$${{ kept }}","commands":["echo ${{ run.args }} $$HOME"],
"env":{"TOKEN":"${{ secrets.hf_token }}","X":"${{ env.FOO }}","FOO":null,"AUTH":"Bearer ${{ env.TOKEN }}","RANK":"${{ dstack.node_rank }}","P":"$$5"},
"registry_auth":{"username":"${{ env.X }}","password":"${{ secrets.reg }}"},
"volumes":[{"name":["data-${{ dstack.node_rank }}"],"path":"/d"}]}`
	vars := Vars{
		Secrets: map[string]string{"hf_token": "hf_SeCrEt", "reg": "rEg", "unused": "nope"},
		Environ: func(k string) (string, bool) { return map[string]string{"FOO": "foo-from-shell"}[k], k == "FOO" },
		Dstack:  map[string]string{"node_rank": "1", "job_num": "1"},
	}
	got, err := ExpandSpec(json.RawMessage(spec), vars)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(got.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "task", "image": "$${{ kept }}", "commands": []any{"echo  $HOME"},
		"env":           map[string]any{"TOKEN": "hf_SeCrEt", "X": "foo-from-shell", "FOO": nil, "AUTH": "Bearer hf_SeCrEt", "RANK": "1", "P": "$5"},
		"registry_auth": map[string]any{"username": "foo-from-shell", "password": "rEg"},
		"volumes":       []any{map[string]any{"name": []any{"data-1"}, "path": "/d"}},
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Fatalf("expanded (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hf_SeCrEt", "rEg"}, got.Secrets); diff != "" {
		t.Fatalf("secrets used (-want +got):\n%s", diff)
	}

	// A secret that is not set is an error naming the field and the
	// secret, not a value.
	_, err = ExpandSpec(json.RawMessage(`{"env":{"T":"${{ secrets.gone }}","S":"${{ secrets.hf_token }}"}}`), vars)
	var ie *Error
	if !errors.As(err, &ie) || ie.Path != "env.T" || !strings.Contains(err.Error(), `secret "gone" is not set`) || strings.Contains(err.Error(), "SeCrEt") {
		t.Fatalf("err = %v, want an *Error on env.T naming the secret gone", err)
	}
	// A bare variable the environment lacks, referenced.
	_, err = ExpandSpec(json.RawMessage(`{"env":{"B":null,"C":"${{ env.B }}"}}`), Vars{})
	if !errors.As(err, &ie) || ie.Path != "env.C" {
		t.Fatalf("err = %v, want an *Error on env.C", err)
	}
	// Without references the bytes are kept.
	plain := json.RawMessage(`{"env":{"A":"b"},"commands":["x"]}`)
	if got, err := ExpandSpec(plain, vars); err != nil || string(got.Spec) != string(plain) {
		t.Fatalf("ExpandSpec(plain) = %s, %v", got.Spec, err)
	}
}
