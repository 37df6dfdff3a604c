package pg

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dstackai/dstack-go/state"
)

// indented renders s the way Encode did before it wrote one resource per
// line: the cutter must not depend on the layout.
func indented(s *state.State) ([]byte, error) {
	if _, err := state.Encode(s); err != nil { // sorts, sets the checksum
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(s)
	return buf.Bytes(), err
}

func TestCut(t *testing.T) {
	tricky := []*state.Resource{
		{Address: "a.b", Attributes: map[string]any{"x": "\n    },\n    {", "y": `\"]},{"address":"a.c"}`, "z": `\\`}},
		{Address: "a.c", Attributes: map[string]any{"n": []any{1, 2.5, true, nil, map[string]any{}}}},
		{Address: "a.d", DependsOn: []string{"a.b"}},
	}
	tests := []struct {
		name      string
		resources []*state.Resource
		encode    func(*state.State) ([]byte, error)
		wantPiece int // resources cut out; 0 means stored whole
	}{
		{"nil", nil, state.Encode, 0},
		{"empty", []*state.Resource{}, state.Encode, 0},
		{"one", []*state.Resource{{Address: "a.b"}}, state.Encode, 1},
		{"three", bigState(3).Resources, state.Encode, 3},
		{"tricky strings", tricky, state.Encode, 3},
		{"duplicate", []*state.Resource{{Address: "a.b"}, {Address: "a.b"}}, state.Encode, 0},
		{"indented nil", nil, indented, 0},
		{"indented three", bigState(3).Resources, indented, 3},
		{"indented tricky strings", tricky, indented, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state.New("test")
			s.Resources = tt.resources
			s.Outputs = map[string]state.Output{"resources": {Value: []any{"not", "these"}}}
			doc, err := tt.encode(s)
			if err != nil {
				t.Fatal(err)
			}
			p := cut(doc, s)
			if len(p.docs) != tt.wantPiece || len(p.addrs) != tt.wantPiece {
				t.Fatalf("cut into %d pieces (%d addresses), want %d:\n%s", len(p.docs), len(p.addrs), tt.wantPiece, doc)
			}
			if got := join(p.head, p.sep, p.tail, p.docs); !bytes.Equal(got, doc) {
				t.Fatalf("join gives\n%s\nwant\n%s", got, doc)
			}
			for i, d := range p.docs {
				if !bytes.HasPrefix(d, []byte("{")) || !bytes.HasSuffix(d, []byte("}")) || !bytes.Contains(d, appendJSONString(nil, p.addrs[i])) {
					t.Errorf("piece %d for %s is %q", i, p.addrs[i], d)
				}
			}
			if p.head == nil || p.sep == nil || p.tail == nil {
				t.Errorf("head, sep or tail is nil (would be stored as NULL)")
			}
		})
	}
}

// FuzzCut: whatever the document, its pieces join back into it, and a
// document Encode made from resources with distinct addresses is cut
// into one piece per resource.
func FuzzCut(f *testing.F) {
	f.Add("a.b", "a.c", `x"y`, []byte(`{"resources":[{"address":"a.b"}]}`))
	f.Add("a.b", "a.b", "\\", []byte(`{"resources":[`))
	f.Add("k.\u2028", "k.<>", "\n    },\n    {", []byte(`{"a":"\\","resources":[{},{}]}`))
	f.Fuzz(func(t *testing.T, a1, a2, value string, raw []byte) {
		s := state.New("test")
		s.Resources = []*state.Resource{{Address: a1, Attributes: map[string]any{"v": value}}, {Address: a2, ConfigHash: value}}
		for _, enc := range []func(*state.State) ([]byte, error){state.Encode, indented} {
			doc, err := enc(s)
			if err != nil {
				t.Skip()
			}
			p := cut(doc, s)
			if got := join(p.head, p.sep, p.tail, p.docs); !bytes.Equal(got, doc) {
				t.Fatalf("join gives\n%s\nwant\n%s", got, doc)
			}
			if s.Resources[0].Address != s.Resources[1].Address && len(p.docs) != 2 {
				t.Errorf("document not cut:\n%s", doc)
			}
		}
		p := cut(raw, s)
		if got := join(p.head, p.sep, p.tail, p.docs); !bytes.Equal(got, raw) {
			t.Fatalf("join of %q gives %q", raw, got)
		}
	})
}
