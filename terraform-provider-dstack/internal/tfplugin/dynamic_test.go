package tfplugin_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// TestDynamicValues: a dynamic attribute carries whichever type the
// configuration gave it (a number, a string, an object, a list of
// objects) through Terraform's wire encoding, and a stored state, typed
// or of an older schema's plain value, fits it.
func TestDynamicValues(t *testing.T) {
	b := tfplugin.Block{Attributes: []tfplugin.Attribute{{Name: "v", Type: tfplugin.DynamicType, Optional: true}}}
	for _, v := range []any{
		nil, 2.0, "0..4", true,
		map[string]any{"min": 1.0, "target": 2.0, "max": 4.0},
		[]any{map[string]any{"name": "a", "count": "1..2", "commands": []any{"x", "y"}}, map[string]any{"name": "b"}},
	} {
		dv, err := tfplugin.EncodeValue(b, map[string]any{"v": v})
		if err != nil {
			t.Fatalf("encode %v: %v", v, err)
		}
		got, err := tfplugin.DecodeValue(b, dv)
		if err != nil {
			t.Fatalf("decode %v: %v", v, err)
		}
		if diff := cmp.Diff(v, got["v"]); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	for _, tc := range []struct {
		raw  any
		want any
	}{
		{map[string]any{"type": "string", "value": "0..4"}, "0..4"},
		{map[string]any{"type": []any{"object", map[string]any{"min": "number"}}, "value": map[string]any{"min": 1.0}}, map[string]any{"min": 1.0}},
		{"2", "2"}, // a state written when the attribute was a string
	} {
		got, _, err := tfplugin.FitJSON(b, map[string]any{"v": tc.raw})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got["v"]); diff != "" {
			t.Errorf("fit %v (-want +got):\n%s", tc.raw, diff)
		}
	}
}
