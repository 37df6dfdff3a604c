package lang

import (
	"encoding/json"
	"reflect"

	"github.com/invopop/jsonschema"

	"github.com/dstackai/dstack-go/lang/resources"
)

// SchemaID is the $id of the configuration JSON Schema.
const SchemaID = "https://dstack.ai/schemas/configuration.json"

// newReflector returns the reflector every schema here is derived with.
// Field names, required fields and enums come from the same struct tags
// the decoder reads, so the schema cannot drift from what loads.
func newReflector() *jsonschema.Reflector {
	return &jsonschema.Reflector{RequiredFromJSONSchemaTags: true}
}

// Schema returns the JSON Schema (draft 2020-12) of the YAML format: one
// of the six kinds, told apart by `type`.
func Schema() ([]byte, error) {
	r := newReflector()
	root := &jsonschema.Schema{
		Version:     jsonschema.Version,
		ID:          SchemaID,
		Title:       "dstack configuration",
		Description: "A dstack configuration document: a task, service, dev environment, fleet, volume or gateway.",
		Definitions: jsonschema.Definitions{},
	}
	for _, k := range Kinds {
		s := r.Reflect(NewSpec(k))
		for name, def := range s.Definitions {
			root.Definitions[name] = def
		}
		root.OneOf = append(root.OneOf, &jsonschema.Schema{Ref: s.Ref})
	}
	return json.MarshalIndent(root, "", "  ")
}

// mappingSchema reflects the mapping form of a type from a value of a
// method-less twin type (so reflection does not recurse into the
// JSONSchema method asking for it).
func mappingSchema(v any) *jsonschema.Schema {
	r := newReflector()
	r.DoNotReference = true
	r.ExpandedStruct = true
	s := r.ReflectFromType(reflect.TypeOf(v))
	s.Version, s.ID = "", ""
	return s
}

func oneOf(desc string, forms ...*jsonschema.Schema) *jsonschema.Schema {
	return &jsonschema.Schema{Description: desc, OneOf: forms}
}

func str(pattern string, examples ...any) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: pattern, Examples: examples}
}

func typ(t string) *jsonschema.Schema { return &jsonschema.Schema{Type: t} }

const durationPattern = `^(off|\d+|(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?)$`

// JSONSchema describes the accepted forms.
func (Duration) JSONSchema() *jsonschema.Schema {
	return oneOf("A duration: seconds, a string with units (30s, 15m, 2h, 1d, 1w), or \"off\"",
		&jsonschema.Schema{Type: "integer", Minimum: json.Number("0")},
		str(durationPattern, "30m", "2h", "off"),
		&jsonschema.Schema{Type: "boolean", Const: false})
}

// JSONSchema describes the accepted forms.
func (Env) JSONSchema() *jsonschema.Schema {
	return oneOf("Environment variables: a mapping, or a list of KEY=value; a bare KEY takes the value from the environment of dstack apply",
		&jsonschema.Schema{Type: "object", AdditionalProperties: &jsonschema.Schema{OneOf: []*jsonschema.Schema{typ("string"), typ("number"), typ("boolean"), typ("null")}}},
		&jsonschema.Schema{Type: "array", Items: str(`^[A-Za-z_][A-Za-z0-9_]*(=.*)?$`)})
}

// JSONSchema describes the accepted forms.
func (Port) JSONSchema() *jsonschema.Schema {
	return oneOf("A port: 8080, \"80:8080\" (local:container), \"*:8080\" (any local port), or a mapping",
		&jsonschema.Schema{Type: "integer", Minimum: json.Number("1"), Maximum: json.Number("65535")},
		str(`^(\d+|\*)?:?\d+$`, "8080", "80:8080", "*:8080"),
		mappingSchema(portMapping{}))
}

// JSONSchema describes the accepted forms.
func (VolumeMount) JSONSchema() *jsonschema.Schema {
	return oneOf("A volume: \"name:/path\" for a dstack volume, \"/host/path:/path\" for an instance volume, or a mapping",
		str(`^[^:]+:.+$`, "data:/data", "/mnt/cache:/root/.cache"), mappingSchema(volumeMapping{}))
}

// JSONSchema describes the accepted forms.
func (FileMapping) JSONSchema() *jsonschema.Schema {
	return oneOf("A file to copy into the run: \"local[:/container/path]\" or a mapping",
		str(`^[^:]+(:.+)?$`), mappingSchema(fileMapping{}))
}

// JSONSchema describes the accepted forms.
func (Repo) JSONSchema() *jsonschema.Schema {
	return oneOf("A repository: a URL, a local path, or a mapping", typ("string"), mappingSchema(repoMapping{}))
}

// JSONSchema describes the accepted forms.
func (Retry) JSONSchema() *jsonschema.Schema {
	return oneOf("Retry policy: true (on every event), false, or a mapping", typ("boolean"), mappingSchema(retryMapping{}))
}

// JSONSchema describes the accepted forms.
func (Strings) JSONSchema() *jsonschema.Schema {
	return oneOf("", typ("string"), &jsonschema.Schema{Type: "array", Items: typ("string")})
}

// JSONSchema describes the accepted forms.
func (FleetNodes) JSONSchema() *jsonschema.Schema {
	return oneOf("Fleet size: a number, \"min..max\", or {min, target, max}",
		&jsonschema.Schema{Type: "integer", Minimum: json.Number("0")},
		str(`^\d*\s*\.\.\s*\d*$`, "0..4", "2.."), mappingSchema(fleetNodesMapping{}))
}

// JSONSchema describes the accepted forms.
func (Blocks) JSONSchema() *jsonschema.Schema {
	return oneOf("Blocks an instance is split into: a number, or \"auto\" for one per GPU",
		&jsonschema.Schema{Type: "integer", Minimum: json.Number("1")}, &jsonschema.Schema{Type: "string", Enum: []any{"auto"}})
}

// JSONSchema describes the accepted forms.
func (GatewayRef) JSONSchema() *jsonschema.Schema {
	return oneOf("The gateway: true (default gateway), false (none), a gateway name, or one of another project as project/name or {project, name}",
		typ("boolean"), str(`^([a-z][a-z0-9-]*/)?[a-z][a-z0-9-]*$`), mappingSchema(gatewayRefMapping{}))
}

// JSONSchema describes the accepted forms.
func (HTTPS) JSONSchema() *jsonschema.Schema {
	return oneOf("Serve over HTTPS: true, false, or \"auto\"", typ("boolean"), &jsonschema.Schema{Type: "string", Enum: []any{"auto"}})
}

// JSONSchema describes the accepted forms.
func (Replicas) JSONSchema() *jsonschema.Schema {
	groups := newReflector()
	groups.DoNotReference = true
	return oneOf("Replicas: a number, a range such as \"1..4\" (needs scaling), or a list of replica groups",
		resources.IntRange{}.JSONSchema(), groups.ReflectFromType(reflect.TypeFor[[]ReplicaGroup]()))
}

// JSONSchema describes the accepted forms.
func (InstanceRef) JSONSchema() *jsonschema.Schema {
	return oneOf("An instance: its name, or {name}, {hostname} or {fleet, instance}", typ("string"), mappingSchema(instanceRefMapping{}))
}

// JSONSchema describes the accepted forms.
func (Model) JSONSchema() *jsonschema.Schema {
	return oneOf("The model the service serves: its name, or a mapping", typ("string"), mappingSchema(modelMapping{}))
}

// JSONSchema describes the accepted forms.
func (SSHHost) JSONSchema() *jsonschema.Schema {
	return oneOf("A host: \"[user@]host[:port]\", or a mapping with per-host settings", typ("string"), mappingSchema(sshHostMapping{}))
}

// JSONSchema describes the accepted forms.
func (ProxyJump) JSONSchema() *jsonschema.Schema {
	return oneOf("A bastion host: \"[user@]host[:port]\" or a mapping", typ("string"), mappingSchema(proxyJumpMapping{}))
}
