package lang

import "reflect"

// Field describes one field of a model struct as every front-end sees
// it: the name written in configurations, whether it is required, its
// allowed values and description. It comes from the same struct tags
// the decoder and the JSON Schema read.
type Field struct {
	// Name is the configuration name ("working_dir").
	Name string
	// Index is the field's index sequence for reflect.Value.FieldByIndex;
	// fields of embedded structs (RunConfig, Profile) are flattened.
	Index []int
	// Type is the field's Go type.
	Type reflect.Type
	// Required is set by `jsonschema:"required"`.
	Required bool
	// Description is the `jsonschema_description` tag.
	Description string
	// Enum lists the allowed strings, from `jsonschema:"enum=..."`.
	Enum []string
	// Sensitive is set by `sensitive:"true"`: the value is never shown.
	Sensitive bool
}

// Fields lists the fields of a model struct type in declaration order,
// with embedded structs flattened, exactly as the decoder accepts them.
// Other front-ends (the Terraform provider's schema) walk the model
// with it, so a field added to the model appears in all of them.
func Fields(t reflect.Type) []Field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	si := structFields(t)
	out := make([]Field, 0, len(si.fields))
	for _, f := range si.fields {
		sf := t.FieldByIndex(f.index)
		out = append(out, Field{Name: f.name, Index: f.index, Type: sf.Type, Required: f.required,
			Description: f.desc, Enum: f.enum, Sensitive: f.sensitive})
	}
	return out
}
