package provider

import (
	"encoding"
	"reflect"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// How each model type is written in Terraform is derived from the model
// (lang), by reflection over the same struct tags the YAML and HCL
// decoder and the JSON Schema read:
//
//   - strings, numbers and bools are attributes of those types;
//   - types with a string form are string attributes: the resources
//     spec grammar (gpu = "H100:8"), durations ("30m"), and the model's
//     several-form types listed in stringForms (ports "80:8080", volumes
//     "data:/data", fleet nodes "0..4", ...);
//   - lists of those are lists of strings, string maps and env are maps;
//   - a struct is a nested block (resources, scaling, retry, ssh_config,
//     ...), a list of structs a repeatable nested block (probes, hosts);
//   - the several-form types with a structured form (fleet nodes as a
//     number, a range or {min, target, max}; service replicas as a range
//     or a list of replica groups) and free-form values (backend_options)
//     are dynamic attributes: they take whichever form the YAML takes,
//     and the model's decoder reads and checks it.
//
// Fields that Terraform's type system cannot say would be left out and
// listed by Unsupported; today there are none.

// stringForms are the model types, beyond encoding.TextUnmarshalers,
// whose Terraform form is their string form.
var stringForms = map[reflect.Type]bool{
	reflect.TypeFor[lang.Port]():        true,
	reflect.TypeFor[lang.VolumeMount](): true,
	reflect.TypeFor[lang.FileMapping](): true,
	reflect.TypeFor[lang.Repo]():        true,
	reflect.TypeFor[lang.Blocks]():      true,
	reflect.TypeFor[lang.GatewayRef]():  true,
	reflect.TypeFor[lang.HTTPS]():       true,
	reflect.TypeFor[lang.InstanceRef](): true,
}

// dynamicForms are the model types written in several forms of which
// one is structured, so no single Terraform type says them all: their
// attributes are dynamic.
var dynamicForms = map[reflect.Type]bool{
	reflect.TypeFor[lang.FleetNodes](): true,
	reflect.TypeFor[lang.Replicas]():   true,
}

// isFreeForm is a value of any shape: a map to interface values, or a
// list of such maps (backend_options).
func isFreeForm(t reflect.Type) bool {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Interface
}

var (
	envType     = reflect.TypeFor[lang.Env]()
	stringsType = reflect.TypeFor[lang.Strings]()
	textType    = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func isStringForm(t reflect.Type) bool {
	return stringForms[t] || reflect.PointerTo(t).Implements(textType)
}

// shapeKind is how a model type appears in Terraform.
type shapeKind int

const (
	shapeSkip shapeKind = iota
	shapeAttr
	shapeBlock     // a single nested block
	shapeBlockList // a repeatable nested block
)

type shape struct {
	kind shapeKind
	typ  tfplugin.Type // of an attribute
	// elem is the struct type of a block, or the element type of a list.
	elem reflect.Type
	// stringForm marks a string attribute (or list element) that holds
	// a several-form model type, parsed by the model's decoder.
	stringForm bool
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func shapeOf(t reflect.Type) shape {
	t = deref(t)
	switch {
	case t == envType:
		return shape{kind: shapeAttr, typ: tfplugin.MapOf(tfplugin.StringType)}
	case t == stringsType:
		return shape{kind: shapeAttr, typ: tfplugin.ListOf(tfplugin.StringType), elem: reflect.TypeFor[string]()}
	case isStringForm(t):
		return shape{kind: shapeAttr, typ: tfplugin.StringType, elem: t, stringForm: true}
	case dynamicForms[t] || isFreeForm(t):
		return shape{kind: shapeAttr, typ: tfplugin.DynamicType, elem: t, stringForm: true}
	}
	switch t.Kind() {
	case reflect.String:
		return shape{kind: shapeAttr, typ: tfplugin.StringType}
	case reflect.Bool:
		return shape{kind: shapeAttr, typ: tfplugin.BoolType}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return shape{kind: shapeAttr, typ: tfplugin.NumberType}
	case reflect.Slice:
		e := deref(t.Elem())
		switch {
		case e.Kind() == reflect.String || isStringForm(e):
			return shape{kind: shapeAttr, typ: tfplugin.ListOf(tfplugin.StringType), elem: e, stringForm: isStringForm(e)}
		case e.Kind() == reflect.Struct:
			return shape{kind: shapeBlockList, elem: e}
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return shape{kind: shapeAttr, typ: tfplugin.MapOf(tfplugin.StringType)}
		}
	case reflect.Struct:
		return shape{kind: shapeBlock, elem: t}
	}
	return shape{kind: shapeSkip}
}

// Computed attributes every resource has, beyond its configuration.
const (
	attrID          = "id"
	attrStatus      = "status"
	attrPrice       = "price"
	attrProvisioned = "provisioned"
)

// provisionedType is one object dstack made for a resource.
var provisionedType = tfplugin.ObjectOf(map[string]tfplugin.Type{
	"index":       tfplugin.NumberType,
	"backend":     tfplugin.StringType,
	"provider_id": tfplugin.StringType,
	"status":      tfplugin.StringType,
	"ip":          tfplugin.StringType,
	"host":        tfplugin.StringType,
	"price":       tfplugin.NumberType,
})

var computedAttrs = []tfplugin.Attribute{
	{Name: attrID, Type: tfplugin.StringType, Computed: true, Description: "The resource's dstack address (`fleet.NAME`), known once it is made."},
	{Name: attrStatus, Type: tfplugin.StringType, Computed: true, Description: "The status of what dstack made: `running`, `provisioning`, `done`, `failed`, or empty when nothing runs."},
	{Name: attrPrice, Type: tfplugin.NumberType, Computed: true, Description: "What the resource costs now, in USD per hour."},
	{Name: attrProvisioned, Type: tfplugin.ListOf(provisionedType), Computed: true, Description: "The objects dstack made: a fleet's machines, a run's jobs (a service's replicas), the volume or gateway. Each has its `index`, `backend`, `provider_id`, `status`, `ip`, `host` (the fleet instance a job runs on; null when it runs on none) and `price` (USD per hour)."},
}

// computedFor returns the computed attributes, with the id's
// description naming the kind's addresses.
func computedFor(kind string) []tfplugin.Attribute {
	out := slices.Clone(computedAttrs)
	for i := range out {
		if out[i].Name == attrID {
			out[i].Description = strings.Replace(out[i].Description, "`fleet.NAME`", "`"+kind+".NAME`", 1)
		}
	}
	return out
}

// resourceSchema derives a resource's Terraform schema from its model
// type.
func resourceSchema(kind lang.Kind) tfplugin.Schema {
	t := reflect.TypeOf(lang.NewSpec(kind)).Elem()
	b := blockOf(t, true)
	b.Description = kindDescriptions[kind]
	b.Attributes = append(b.Attributes, computedFor(string(kind))...)
	b.Blocks = append(b.Blocks, timeoutsBlock)
	return tfplugin.Schema{Version: schemaVersion, Block: b}
}

// schemaVersion is the version of every resource's state schema. States
// of older versions, and states written by an older provider of this
// version whose schema lacked model fields added since, are fitted to
// the current schema by Upgrade.
const schemaVersion = 1

var kindDescriptions = map[lang.Kind]string{
	lang.KindFleet:          "A dstack fleet: a pool of machines in a cloud, on this machine (the `local` backend), or on-prem hosts reached over SSH (`ssh_config`).",
	lang.KindTask:           "A dstack task: a batch job, possibly distributed across nodes, run on a fleet or on machines made for it.",
	lang.KindService:        "A dstack service: a long-running, auto-scaled endpoint behind the gateway.",
	lang.KindDevEnvironment: "A dstack dev environment: a container with an IDE attached. Its container runs an SSH server that lets in your dstack key (`~/.dstack/ssh/id_ed25519`, made on first use); `dstack attach NAME` writes a `Host NAME` entry to `~/.dstack/ssh/config` (add `Include ~/.dstack/ssh/config` to `~/.ssh/config` once) and prints the IDE link, such as `vscode://vscode-remote/ssh-remote+NAME/WORKDIR`, so that `ssh NAME` and the IDE open it. `inactivity_duration` counts open SSH connections as use.",
	lang.KindVolume:         "A dstack volume: a network disk that runs mount.",
	lang.KindGateway:        "A dstack gateway: the ingress that serves services over a domain.",
}

func blockOf(t reflect.Type, top bool) tfplugin.Block {
	var b tfplugin.Block
	for _, f := range lang.Fields(t) {
		if top && f.Name == "type" {
			continue // the resource type says it
		}
		sh := shapeOf(f.Type)
		desc := describe(f)
		switch sh.kind {
		case shapeAttr:
			a := tfplugin.Attribute{Name: f.Name, Type: sh.typ, Description: desc, Sensitive: f.Sensitive}
			switch {
			case top && f.Name == "name":
				a.Required = true
				a.Description = "The resource's name: lower-case letters, digits and dashes, starting with a letter. Changing it replaces the resource."
			case f.Required:
				a.Required = true
			default:
				a.Optional = true
			}
			if strings.HasPrefix(f.Description, "Deprecated") {
				a.Deprecated = f.Description
			}
			b.Attributes = append(b.Attributes, a)
		case shapeBlock:
			nb := tfplugin.NestedBlock{Name: f.Name, Nesting: tfplugin.Single, Block: blockOf(sh.elem, false)}
			nb.Block.Description = desc
			b.Blocks = append(b.Blocks, nb)
		case shapeBlockList:
			nb := tfplugin.NestedBlock{Name: f.Name, Nesting: tfplugin.ListNesting, Block: blockOf(sh.elem, false)}
			nb.Block.Description = desc
			b.Blocks = append(b.Blocks, nb)
		}
	}
	return b
}

func describe(f lang.Field) string {
	d := f.Description
	if d != "" && !strings.HasSuffix(d, ".") {
		d += "."
	}
	if len(f.Enum) > 0 {
		d = strings.TrimSpace(d + " One of: `" + strings.Join(f.Enum, "`, `") + "`.")
	}
	if sh := shapeOf(f.Type); sh.stringForm {
		if ex := stringFormExamples[sh.elem]; ex != "" {
			d = strings.TrimSpace(d + " Written as " + ex + ".")
		}
	}
	return d
}

// stringFormExamples say how the string forms are written, for the docs.
var stringFormExamples = map[reflect.Type]string{
	reflect.TypeFor[lang.Port]():        "`\"8080\"`, `\"80:8080\"` (local:container) or `\"*:8080\"`",
	reflect.TypeFor[lang.VolumeMount](): "`\"NAME:/path\"` (a dstack volume) or `\"/host/path:/path\"` (an instance volume)",
	reflect.TypeFor[lang.FileMapping](): "`\"local/path[:/container/path]\"`",
	reflect.TypeFor[lang.Repo]():        "a URL or `\"local/path[:/container/path]\"`",
	reflect.TypeFor[lang.FleetNodes]():  "a number (`2`), a range (`\"0..4\"`), or an object (`{ min = 1, target = 2, max = 4 }`: the fleet starts with `target` and scales within `min` and `max`)",
	reflect.TypeFor[lang.Blocks]():      "a number or `\"auto\"`",
	reflect.TypeFor[lang.GatewayRef]():  "`\"true\"`, `\"false\"`, a gateway name, or `\"project/name\"`",
	reflect.TypeFor[lang.HTTPS]():       "`\"true\"`, `\"false\"` or `\"auto\"`",
	reflect.TypeFor[lang.Replicas]():    "a number (`2`), a range (`\"1..4\"`, with scaling), or a list of replica groups (`[{ name = \"prefill\", count = 2, commands = [...] }, ...]`), each with `name`, `count`, `scaling`, `resources`, `spot_policy`, `reservation`, `commands`, `image`, `python`, `nvcc`, `docker`, `privileged` and `router` (`{ type = \"sglang\" }`) as in the YAML",
	reflect.TypeFor[lang.InstanceRef](): "an instance name",
	reflect.TypeFor[[]map[string]any](): "a list of objects, each passed to the backend as written (`[{ key = \"value\" }]`)",
	reflect.TypeFor[lang.Duration]():    "a duration: `\"30m\"`, `\"2h\"`, seconds, or `\"off\"`",
}
