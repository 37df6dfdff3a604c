package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sample() *State {
	s := New("v0.1.0")
	s.Serial = 7
	s.Put(&Resource{Address: "task.b", DependsOn: []string{"volume.z", "fleet.a"}})
	s.Put(&Resource{Address: "fleet.a", ConfigHash: "abc", Instances: []*Instance{
		{Index: 1, ProviderID: "i-2", Secrets: map[string]string{"agent_token": "s3cret"}},
		{Index: 0, ProviderID: "i-1", Attributes: map[string]any{"ip": "10.0.0.1"}},
	}})
	s.Outputs = map[string]Output{"url": {Value: "https://x"}, "token": {Value: "t0k3n", Sensitive: true}}
	return s
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := sample()
	data, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, "test")
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	again, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatalf("re-encoding changed the bytes:\n%s\n---\n%s", data, again)
	}
	if got.Resources[0].Address != "fleet.a" || got.Resources[0].Instances[0].Index != 0 || got.Resources[1].DependsOn[0] != "fleet.a" {
		t.Fatalf("not sorted: %s", data)
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	a, _ := Encode(sample())
	s := sample()
	s.Lineage = New("").Lineage
	b, _ := Encode(s)
	if bytes.Equal(a, b) {
		t.Fatal("different lineages encoded equally")
	}
	c := sample()
	c.Lineage = s.Lineage
	d, _ := Encode(c)
	if !bytes.Equal(b, d) {
		t.Fatal("equal states encoded differently")
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	good, _ := Encode(sample())
	newer := strings.Replace(string(good), fmt.Sprintf(`"version":%d`, FormatVersion), `"version":99`, 1)
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "empty"},
		{"truncated", string(good[:len(good)/3]), "truncated"},
		{"edited value", strings.Replace(string(good), `"serial":7`, `"serial":8`, 1), "checksum does not match"},
		{"no checksum", strings.Replace(string(good), `"checksum":"`, `"checksum":"x`, 1), "checksum"},
		{"not json", "{{{", "not a state document"},
		{"no lineage", `{"version": 1, "serial": 1, "checksum": "x"}`, "no lineage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.data), "s.json")
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *CorruptError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "s.json") {
				t.Errorf("error %q should mention %q and the file", err, tt.want)
			}
		})
	}
	if _, err := Decode([]byte(newer), "s.json"); !errors.Is(err, ErrNewerVersion) {
		t.Errorf("newer version: got %v", err)
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	s := sample()
	m := s.Masked()
	data, _ := Encode(m)
	for _, secret := range []string{"s3cret", "t0k3n"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("masked state shows %q", secret)
		}
	}
	if s.Resource("fleet.a").Instances[0].Secrets["agent_token"] != "s3cret" {
		t.Error("Masked changed the original")
	}
	if m.Outputs["url"].Value != "https://x" {
		t.Error("a non-sensitive output was masked")
	}
}

func TestPutRemoveKeepOrder(t *testing.T) {
	s := New("")
	for _, a := range []string{"task.c", "fleet.a", "task.b", "fleet.a"} {
		s.Put(&Resource{Address: a})
	}
	var got []string
	for _, r := range s.Resources {
		got = append(got, r.Address)
	}
	if strings.Join(got, ",") != "fleet.a,task.b,task.c" {
		t.Fatalf("order %v", got)
	}
	if !s.Remove("task.b") || s.Remove("task.b") || s.Resource("task.b") != nil || s.Resource("task.c") == nil {
		t.Fatal("remove")
	}
}

// Big builds a state of n resources for benchmarks.
func big(n int) *State {
	s := New("bench")
	for i := range n {
		s.Resources = append(s.Resources, &Resource{
			Address:    fmt.Sprintf("task.r%05d", i),
			ConfigHash: fmt.Sprintf("%064x", i),
			DependsOn:  []string{"fleet.pool"},
			Attributes: map[string]any{"image": "pytorch/pytorch:2.4", "gpu": "A100:80GB:8", "nodes": 2},
			Instances: []*Instance{{Index: 0, ProviderID: fmt.Sprintf("job-%d", i), Provider: "local", Status: "running",
				Attributes: map[string]any{"ip": "10.0.0.1", "port": 8080}}},
		})
	}
	return s
}

func BenchmarkEncode10000(b *testing.B) {
	s := big(10000)
	var n int
	for b.Loop() {
		data, err := Encode(s)
		if err != nil {
			b.Fatal(err)
		}
		n = len(data)
	}
	b.ReportMetric(float64(n)/1e6, "state-MB")
}

func BenchmarkDecode10000(b *testing.B) {
	data, _ := Encode(big(10000))
	for b.Loop() {
		if _, err := Decode(data, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEncoderMatchesJSON checks the hand-written resource encoder against
// encoding/json on awkward values.
func TestEncoderMatchesJSON(t *testing.T) {
	rs := []*Resource{
		{Address: "task.a"},
		{Address: "fleet.b<&>", ConfigHash: "h", DependsOn: []string{"x", "y\"z"},
			Attributes: map[string]any{"s": "tab\there \u2028 é", "f": 1.5, "big": 1e21, "small": 1e-7, "i": 3, "n": nil, "b": true,
				"list": []any{"a", 2.0, map[string]any{"k": "v"}}, "num": json.Number("12.50"), "strs": []string{"p", "q"}},
			Instances: []*Instance{{Index: 2, ProviderID: "i-1", Provider: "aws", Token: "t", Status: "running",
				Attributes: map[string]any{"ip": "10.0.0.1"}, Secrets: map[string]string{"z": "1", "a": "2"}}, {Index: 0}}},
	}
	for _, r := range rs {
		got, err := appendResource(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Errorf("encoder differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	}
}

// TestDecodeLinesLikeWhole: the parallel line decoder reads what the
// whole-document decoder reads, also where the layout is not Encode's
// (two resources on a line, an empty line), where it falls back to it.
func TestDecodeLinesLikeWhole(t *testing.T) {
	data, err := Encode(big(300))
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.Index(data, []byte("},\n{"))
	if first < 0 {
		t.Fatal("no resource line break in the encoded state")
	}
	joined := slices.Concat(data[:first+2], []byte(" "), data[first+3:])
	blank := slices.Concat(data[:first+3], []byte("\n"), data[first+3:])
	for name, doc := range map[string][]byte{"as encoded": data, "two on a line": joined, "an empty line": blank} {
		got, err := decodeLines(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := decodeWhole(doc)
		if err != nil {
			t.Fatalf("%s: whole: %v", name, err)
		}
		if !reflect.DeepEqual(got.Resources, want.Resources) || len(got.Resources) != 300 {
			t.Fatalf("%s: the line decoder read %d resources, unlike the whole decoder's %d", name, len(got.Resources), len(want.Resources))
		}
	}
}
