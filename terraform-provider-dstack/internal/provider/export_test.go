package provider

import (
	"fmt"
	"reflect"

	"github.com/dstackai/dstack-go/lang"
)

// Unsupported lists the model fields (as dotted paths) that the
// Terraform schema leaves out, because Terraform's types cannot say
// them.
func Unsupported() []string {
	var out []string
	for _, k := range lang.Kinds {
		walkUnsupported(reflect.TypeOf(lang.NewSpec(k)).Elem(), string(k), &out, map[reflect.Type]bool{})
	}
	return out
}

func walkUnsupported(t reflect.Type, prefix string, out *[]string, seen map[reflect.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	for _, f := range lang.Fields(t) {
		sh := shapeOf(f.Type)
		p := fmt.Sprintf("%s.%s", prefix, f.Name)
		switch sh.kind {
		case shapeSkip:
			*out = append(*out, p)
		case shapeBlock, shapeBlockList:
			walkUnsupported(sh.elem, p, out, seen)
		}
	}
	delete(seen, t)
}
