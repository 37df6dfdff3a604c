package state

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: any bytes either decode or give an error, never a panic;
// whatever decodes encodes back to the same document, and a document
// decoded line by line equals the one decoded as a whole.
func FuzzDecode(f *testing.F) {
	s := New("test")
	s.Serial = 3
	s.Put(&Resource{Address: "fleet.a", ConfigHash: "h", Attributes: map[string]any{"spec": map[string]any{"nodes": 2}},
		Instances: []*Instance{{Index: 0, ProviderID: "i-1", Token: "t", Attributes: map[string]any{"ip": "10.0.0.1"}}}})
	s.Put(&Resource{Address: "volume.b", DependsOn: []string{"fleet.a"}})
	doc, err := Encode(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add([]byte(`{"version":1,"serial":1,"lineage":"x","resources":[` + "\n" + `{"address":"a"}` + "\n" + `],"checksum":""}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data, "fuzz")
		if err != nil {
			return
		}
		again, err := Encode(got)
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode then encode changed the document:\n%q\n%q", data, again)
		}
		whole, err := decodeWhole(data)
		if err != nil {
			t.Fatalf("decodes by lines but not whole: %v", err)
		}
		upgrade(whole)
		if !reflect.DeepEqual(whole, got) {
			t.Fatalf("line-by-line and whole decoding differ")
		}
	})
}
