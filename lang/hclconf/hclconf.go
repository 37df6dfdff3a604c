// Package hclconf reads configurations written in HCL into the lang model.
//
// A resource is a block named by its kind with the resource name as its
// one label; its attributes and nested blocks use the same field names as
// dstack's YAML:
//
//	task "train" {
//	  image    = "pytorch/pytorch:latest"
//	  commands = ["python train.py"]
//	  resources {
//	    gpu = "H100:8"
//	  }
//	}
//
// Beside resources, a configuration may declare `variable` blocks (set
// with -var, -var-file or DSTACK_VAR_<name>), `locals`, use expressions
// and functions, refer to other resources (`fleet.trainers.name`) and list
// `depends_on`; references and depends_on become dependency edges. All
// HCL files of a directory form one configuration, so variables and
// locals are shared between them.
//
// The package only turns HCL into lang.Nodes; lang.DecodeResource types
// and validates them exactly as it does for YAML.
package hclconf

import (
	"fmt"
	"maps"
	"math/big"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/internal/parallel"
)

// File is one HCL source file.
type File struct {
	Name string
	Src  []byte
}

// Options carries what the command line and the environment contribute.
type Options struct {
	// Vars are -var arguments, "name=value", in command-line order.
	Vars []string
	// VarFiles are -var-file paths, in command-line order. Files ending in
	// .json use HCL's JSON syntax.
	VarFiles []string
	// Environ is the environment (os.Environ()); DSTACK_VAR_<name> sets a
	// variable.
	Environ []string
	// BaseDir resolves relative paths in file().
	BaseDir string
	// Known lists resources declared outside HCL (in YAML files of the same
	// configuration) that HCL may refer to.
	Known []lang.Address
}

// EnvPrefix is the prefix of environment variables that set variables.
const EnvPrefix = "DSTACK_VAR_"

// computedAttributes are resource attributes known only after apply;
// references to them evaluate to unknown values.
var computedAttributes = []string{"id", "status"}

type resourceBlock struct {
	addr  lang.Address
	block *hclsyntax.Block
}

type variable struct {
	name        string
	typ         cty.Type
	def         cty.Value
	hasDefault  bool
	sensitive   bool
	declRange   hcl.Range
	validations []*hclsyntax.Block
}

type loader struct {
	opts      Options
	sources   map[string][]byte
	diags     lang.Diagnostics
	variables map[string]*variable
	localAttr map[string]*hclsyntax.Attribute
	// secrets are the values of sensitive variables, scrubbed from every
	// message.
	secrets   []string
	resources []*resourceBlock
	backend   *lang.Backend
	addrs     map[lang.Address]bool
	funcs     map[string]function.Function
}

// Result is what the HCL files of a configuration declare.
type Result struct {
	Resources []lang.RawResource
	// Backend is the `dstack { backend ... }` block, nil when none.
	Backend *lang.Backend
}

// LoadConfig parses and evaluates the HCL files of one configuration.
func LoadConfig(files []File, opts Options) (*Result, lang.Diagnostics) {
	l := &loader{
		opts:      opts,
		sources:   map[string][]byte{},
		variables: map[string]*variable{},
		localAttr: map[string]*hclsyntax.Attribute{},
		addrs:     map[lang.Address]bool{},
		funcs:     functions(opts.BaseDir),
	}
	for _, a := range opts.Known {
		l.addrs[a] = true
	}
	// Parsing is independent per file (and per piece of a large file:
	// see pieces.go); registering blocks is not.
	bodies, parseDiags := parseFiles(files)
	for i, f := range files {
		l.sources[f.Name] = f.Src
		l.addDiags(parseDiags[i])
		if !parseDiags[i].HasErrors() && bodies[i] != nil {
			l.register(bodies[i])
		}
	}
	if l.diags.HasErrors() {
		return &Result{Backend: l.backend}, l.diags
	}
	vars := l.evalVariables()
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": vars}, Functions: l.funcs}
	ctx.Variables["local"] = l.evalLocals(ctx)
	l.addResourceNamespace(ctx)

	// Each resource converts on its own, with a copy of the loader that
	// collects its diagnostics; the shared maps are only read from here on.
	out := make([]lang.RawResource, len(l.resources))
	resDiags := make([]lang.Diagnostics, len(l.resources))
	parallel.ForEach(len(l.resources), func(i int) {
		sub := *l
		sub.diags = nil
		out[i] = sub.resource(l.resources[i], ctx)
		resDiags[i] = sub.diags
	})
	for _, ds := range resDiags {
		l.diags = append(l.diags, ds...)
	}
	lang.ScrubDiagnostics(l.diags, l.secrets)
	return &Result{Resources: out, Backend: l.backend}, l.diags
}

// settings reads the `dstack` block: for now its one `backend "TYPE"`
// block, whose attributes must be literal values.
func (l *loader) settings(b *hclsyntax.Block) {
	if len(b.Labels) > 0 {
		l.errorf(b.LabelRanges[0], "Unexpected label", "The dstack block has no labels.")
	}
	for _, a := range sortedAttrs(b.Body) {
		l.errorf(a.NameRange, fmt.Sprintf("Unsupported setting %q", a.Name), "The dstack block holds a backend block.")
	}
	for _, nb := range b.Body.Blocks {
		if nb.Type != "backend" {
			detail := "The dstack block holds a backend block."
			if s := lang.Suggest(nb.Type, []string{"backend"}); s != "" {
				detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
			}
			l.errorf(nb.TypeRange, fmt.Sprintf("Unsupported block %q", nb.Type), "%s", detail)
			continue
		}
		if len(nb.Labels) != 1 {
			l.errorf(nb.TypeRange, "A backend block needs one label", "Write backend \"TYPE\" { ... }, e.g. backend \"s3\".")
			continue
		}
		if l.backend != nil {
			l.errorf(nb.LabelRanges[0], "Duplicate backend", "The backend is already configured at %s.", l.backend.Range)
			continue
		}
		be := &lang.Backend{Type: nb.Labels[0], Range: convertRange(nb.Range())}
		var ds lang.Diagnostics
		be.Config, ds = literalStrings(sortedAttrs(nb.Body))
		l.diags = append(l.diags, ds...)
		for _, inner := range nb.Body.Blocks {
			l.errorf(inner.TypeRange, fmt.Sprintf("Unexpected block %q", inner.Type), "Backend settings are attributes.")
		}
		l.backend = be
	}
}

// literalStrings reads attributes that must be literal values (backend
// settings) as strings; numbers and bools are taken as written.
func literalStrings(attrs []*hclsyntax.Attribute) (map[string]string, lang.Diagnostics) {
	out := make(map[string]string, len(attrs))
	var diags lang.Diagnostics
	for _, a := range attrs {
		val, ds := a.Expr.Value(nil)
		if ds.HasErrors() {
			diags = append(diags, lang.Errorf(convertRange(a.Expr.Range()), "", fmt.Sprintf("Invalid value for %q", a.Name),
				"Backend settings are literal values: variables and references are not available because state is read before anything is evaluated. Use -backend-config for values that vary."))
			continue
		}
		str, err := convert.Convert(val, cty.String)
		if err != nil || str.IsNull() {
			diags = append(diags, lang.Errorf(convertRange(a.Expr.Range()), "", fmt.Sprintf("Invalid value for %q", a.Name), "Expected a string, number or bool."))
			continue
		}
		out[a.Name] = str.AsString()
	}
	return out, diags
}

// LoadSettings reads a file of literal `key = "value"` settings, such as
// a -backend-config file.
func LoadSettings(name string, src []byte) (map[string]string, lang.Diagnostics) {
	f, ds := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if ds.HasErrors() {
		return nil, ConvertDiagnostics(ds)
	}
	body := f.Body.(*hclsyntax.Body)
	out, diags := literalStrings(sortedAttrs(body))
	for _, b := range body.Blocks {
		diags = append(diags, lang.Errorf(convertRange(b.TypeRange), "", fmt.Sprintf("Unexpected block %q", b.Type), "A settings file holds key = value lines."))
	}
	return out, diags
}

// ConvertDiagnostics turns HCL's diagnostics into the project's.
func ConvertDiagnostics(ds hcl.Diagnostics) lang.Diagnostics {
	out := make(lang.Diagnostics, 0, len(ds))
	for _, d := range ds {
		out = append(out, convertDiag(d))
	}
	return out
}

func (l *loader) addDiags(ds hcl.Diagnostics) {
	for _, d := range ds {
		l.diags = append(l.diags, convertDiag(d))
	}
}

func (l *loader) errorf(rng hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, lang.Errorf(convertRange(rng), "", summary, format, args...))
}

var topBlocks = append([]string{"dstack", "variable", "locals"}, kindNames()...)

func kindNames() []string {
	var out []string
	for _, k := range lang.Kinds {
		out = append(out, string(k))
	}
	return out
}

// register records the top-level blocks of a parsed file.
func (l *loader) register(body *hclsyntax.Body) {
	for _, a := range sortedAttrs(body) {
		l.errorf(a.NameRange, fmt.Sprintf("Unexpected attribute %q", a.Name),
			"Only blocks may appear at the top level: %s.", strings.Join(topBlocks, ", "))
	}
	for _, b := range body.Blocks {
		switch b.Type {
		case "variable":
			l.declareVariable(b)
		case "dstack":
			l.settings(b)
		case "locals":
			if len(b.Labels) > 0 {
				l.errorf(b.LabelRanges[0], "Unexpected label", "A locals block has no labels.")
			}
			for _, nb := range b.Body.Blocks {
				l.errorf(nb.TypeRange, "Unexpected block", "A locals block holds attributes only.")
			}
			for _, a := range sortedAttrs(b.Body) {
				if prev, dup := l.localAttr[a.Name]; dup {
					l.errorf(a.NameRange, fmt.Sprintf("Duplicate local %q", a.Name), "local.%s is also defined at %s.", a.Name, convertRange(prev.NameRange))
					continue
				}
				l.localAttr[a.Name] = a
			}
		default:
			kind := lang.Kind(b.Type)
			if lang.NewSpec(kind) == nil {
				detail := fmt.Sprintf("Top-level blocks are %s.", strings.Join(topBlocks, ", "))
				if s := lang.Suggest(b.Type, topBlocks); s != "" {
					detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
				}
				l.errorf(b.TypeRange, fmt.Sprintf("Unsupported block type %q", b.Type), "%s", detail)
				continue
			}
			if len(b.Labels) != 1 {
				rng := b.TypeRange
				if len(b.Labels) > 1 {
					rng = b.LabelRanges[1]
				}
				l.errorf(rng, fmt.Sprintf("A %s block needs one label", b.Type), "Write %s \"NAME\" { ... }; the label is the resource name.", b.Type)
				continue
			}
			addr := lang.Address{Kind: kind, Name: b.Labels[0]}
			l.resources = append(l.resources, &resourceBlock{addr: addr, block: b})
			l.addrs[addr] = true
		}
	}
}

func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

func (l *loader) declareVariable(b *hclsyntax.Block) {
	if len(b.Labels) != 1 {
		l.errorf(b.TypeRange, "A variable block needs one label", "Write variable \"NAME\" { ... }.")
		return
	}
	name := b.Labels[0]
	if !hclsyntax.ValidIdentifier(name) {
		l.errorf(b.LabelRanges[0], fmt.Sprintf("Invalid variable name %q", name), "Variable names are identifiers: letters, digits, underscores and dashes.")
		return
	}
	if prev, dup := l.variables[name]; dup {
		l.errorf(b.LabelRanges[0], fmt.Sprintf("Duplicate variable %q", name), "var.%s is also declared at %s.", name, convertRange(prev.declRange))
		return
	}
	v := &variable{name: name, typ: cty.DynamicPseudoType, declRange: b.LabelRanges[0]}
	for _, a := range sortedAttrs(b.Body) {
		switch a.Name {
		case "type":
			t, ds := typeexpr.TypeConstraint(a.Expr)
			l.addDiags(ds)
			if !ds.HasErrors() {
				v.typ = t
			}
		case "default":
			val, ds := a.Expr.Value(nil)
			l.addDiags(ds)
			v.def, v.hasDefault = val, !ds.HasErrors()
		case "sensitive":
			val, ds := a.Expr.Value(nil)
			l.addDiags(ds)
			if ds.HasErrors() {
				continue
			}
			if val.IsNull() || !val.IsKnown() || val.Type() != cty.Bool {
				l.errorf(a.Expr.Range(), "Invalid value for \"sensitive\"", "Expected true or false.")
				continue
			}
			v.sensitive = val.True()
		case "description", "nullable":
		default:
			l.errorf(a.NameRange, fmt.Sprintf("Unsupported argument %q in variable", a.Name),
				"A variable takes type, default, description, sensitive, nullable and validation blocks.")
		}
	}
	for _, nb := range b.Body.Blocks {
		if nb.Type != "validation" {
			l.errorf(nb.TypeRange, fmt.Sprintf("Unsupported block %q in variable", nb.Type), "Only validation blocks are allowed.")
			continue
		}
		v.validations = append(v.validations, nb)
	}
	if v.hasDefault && v.typ != cty.DynamicPseudoType && !v.def.IsNull() {
		conv, err := convert.Convert(v.def, v.typ)
		if err != nil {
			l.errorf(b.Body.Attributes["default"].Expr.Range(), "Invalid default value for variable", "var.%s: %s.", name, err)
		} else {
			v.def = conv
		}
	}
	l.variables[name] = v
}

// rawValue turns a value given on the command line or in the environment
// into the variable's type: strings are taken as written, other types are
// parsed as HCL expressions, as Terraform does.
func (l *loader) rawValue(v *variable, raw, source string) (cty.Value, bool) {
	if v.typ == cty.String || v.typ == cty.DynamicPseudoType {
		return cty.StringVal(raw), true
	}
	expr, ds := hclsyntax.ParseExpression([]byte(raw), source, hcl.InitialPos)
	if !ds.HasErrors() {
		var val cty.Value
		val, ds = expr.Value(nil)
		if !ds.HasErrors() {
			return val, true
		}
	}
	l.diags = append(l.diags, lang.Errorf(lang.Range{}, "", fmt.Sprintf("Invalid value for variable %q", v.name),
		"The value from %s is not a valid %s expression: %s.", source, v.typ.FriendlyName(), strings.TrimSuffix(ds.Errs()[0].Error(), ".")))
	return cty.NilVal, false
}

func (l *loader) evalVariables() cty.Value {
	values := map[string]cty.Value{}
	set := func(v *variable, val cty.Value, rng *hcl.Range, source string) {
		if v.typ != cty.DynamicPseudoType {
			conv, err := convert.Convert(val, v.typ)
			if err != nil {
				r := lang.Range{}
				if rng != nil {
					r = convertRange(*rng)
				}
				l.diags = append(l.diags, lang.Errorf(r, "", fmt.Sprintf("Invalid value for variable %q", v.name),
					"The value from %s is not a valid %s: %s.", source, v.typ.FriendlyName(), err))
				return
			}
			val = conv
		}
		values[v.name] = val
	}
	for _, e := range l.opts.Environ {
		k, val, ok := strings.Cut(e, "=")
		name, isVar := strings.CutPrefix(k, EnvPrefix)
		if !ok || !isVar {
			continue
		}
		if v, declared := l.variables[name]; declared {
			if cv, ok := l.rawValue(v, val, "environment variable "+k); ok {
				set(v, cv, nil, "environment variable "+k)
			}
		}
	}
	for _, path := range l.opts.VarFiles {
		l.loadVarFile(path, func(name string, val cty.Value, rng hcl.Range) {
			v, declared := l.variables[name]
			if !declared {
				l.diags = append(l.diags, lang.Warnf(convertRange(rng), "", fmt.Sprintf("Value for undeclared variable %q", name),
					"The file sets %q, but no variable block declares it.", name))
				return
			}
			set(v, val, &rng, path)
		})
	}
	for _, arg := range l.opts.Vars {
		name, raw, ok := strings.Cut(arg, "=")
		if !ok {
			l.diags = append(l.diags, lang.Errorf(lang.Range{}, "", "Invalid -var option", "The option -var %q must be NAME=VALUE.", arg))
			continue
		}
		v, declared := l.variables[strings.TrimSpace(name)]
		if !declared {
			detail := "Declare it with a variable block first."
			if s := lang.Suggest(name, l.variableNames()); s != "" {
				detail = fmt.Sprintf("Did you mean %q? %s", s, detail)
			}
			l.diags = append(l.diags, lang.Errorf(lang.Range{}, "", fmt.Sprintf("Value for undeclared variable %q", name), "%s", detail))
			continue
		}
		if cv, ok := l.rawValue(v, raw, "-var "+name); ok {
			set(v, cv, nil, "-var "+name)
		}
	}
	for _, name := range l.variableNames() {
		v := l.variables[name]
		if _, ok := values[name]; ok {
			continue
		}
		if !v.hasDefault {
			l.errorf(v.declRange, fmt.Sprintf("No value for required variable %q", name),
				"Set it with -var %s=..., a -var-file, or the environment variable %s%s, or give it a default.", name, EnvPrefix, name)
			values[name] = cty.UnknownVal(v.typ)
			continue
		}
		values[name] = v.def
	}
	for name, val := range values {
		if l.variables[name].sensitive {
			collectStrings(val, &l.secrets)
			values[name] = val.Mark(sensitiveMark)
		}
	}
	obj := cty.ObjectVal(values)
	for _, name := range l.variableNames() {
		l.validateVariable(l.variables[name], obj)
	}
	return obj
}

// sensitiveMark marks the values of variables declared sensitive; HCL
// carries marks through expressions and functions, so every value
// computed from one is marked too.
const sensitiveMark = mark("sensitive")

type mark string

// isSensitive reports whether a value carries the sensitive mark itself
// (not only inside its elements).
func isSensitive(v cty.Value) bool { return v.HasMark(sensitiveMark) }

// collectStrings gathers the strings in a value, to scrub them from
// messages. (Numbers and booleans are left: replacing every "1" in a
// message would make it unreadable.)
func collectStrings(v cty.Value, out *[]string) {
	v, _ = v.UnmarkDeep()
	switch {
	case v.IsNull() || !v.IsKnown():
	case v.Type() == cty.String:
		*out = append(*out, v.AsString())
	case v.CanIterateElements():
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			collectStrings(ev, out)
		}
	}
}

func (l *loader) variableNames() []string {
	names := make([]string, 0, len(l.variables))
	for n := range l.variables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (l *loader) validateVariable(v *variable, vars cty.Value) {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": vars}, Functions: l.funcs}
	for _, vb := range v.validations {
		cond, ok := vb.Body.Attributes["condition"]
		if !ok {
			l.errorf(vb.TypeRange, "Missing condition", "A validation block needs condition and error_message.")
			continue
		}
		val, ds := cond.Expr.Value(ctx)
		l.addDiags(ds)
		val, _ = val.UnmarkDeep()
		if ds.HasErrors() || !val.IsKnown() {
			continue
		}
		if val.IsNull() || val.Type() != cty.Bool {
			l.errorf(cond.Expr.Range(), "Invalid validation condition", "The condition must be true or false.")
			continue
		}
		if val.True() {
			continue
		}
		msg := "The value of var." + v.name + " is not valid."
		if em, ok := vb.Body.Attributes["error_message"]; ok {
			if mv, ds := em.Expr.Value(ctx); !ds.HasErrors() && mv.Type() == cty.String && mv.IsKnown() && !mv.IsNull() {
				if mv.ContainsMarked() {
					msg = "The error message refers to a sensitive value, so it is not shown."
				} else {
					msg = mv.AsString()
				}
			}
		}
		l.errorf(v.declRange, fmt.Sprintf("Invalid value for variable %q", v.name), "%s", msg)
	}
}

func (l *loader) loadVarFile(path string, set func(string, cty.Value, hcl.Range)) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.diags = append(l.diags, lang.Errorf(lang.Range{}, "", "Cannot read variables file", "%s.", err))
		return
	}
	var file *hcl.File
	var ds hcl.Diagnostics
	if strings.HasSuffix(path, ".json") {
		file, ds = hcljson.Parse(src, path)
	} else {
		file, ds = hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	}
	l.sources[path] = src
	l.addDiags(ds)
	if ds.HasErrors() {
		return
	}
	attrs, ds := file.Body.JustAttributes()
	l.addDiags(ds)
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := attrs[n]
		val, ds := a.Expr.Value(nil)
		l.addDiags(ds)
		if !ds.HasErrors() {
			set(n, val, a.Expr.Range())
		}
	}
}

// evalLocals evaluates locals in dependency order; what remains once no
// more progress is possible refers to itself through a cycle.
func (l *loader) evalLocals(ctx *hcl.EvalContext) cty.Value {
	values := map[string]cty.Value{}
	pending := map[string]*hclsyntax.Attribute{}
	for n, a := range l.localAttr {
		pending[n] = a
	}
	for len(pending) > 0 {
		progress := false
		for _, name := range slices.Sorted(maps.Keys(pending)) {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				if ta, ok := tr[1].(hcl.TraverseAttr); ok {
					if _, waiting := pending[ta.Name]; waiting {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			ctx.Variables["local"] = cty.ObjectVal(values)
			val, ds := a.Expr.Value(ctx)
			l.addDiags(ds)
			if ds.HasErrors() {
				val = cty.DynamicVal
			}
			values[name] = val
			delete(pending, name)
			progress = true
		}
		if !progress {
			names := slices.Sorted(maps.Keys(pending))
			first := pending[names[0]]
			l.errorf(first.NameRange, "Cycle in locals", "These locals refer to each other: %s.", "local."+strings.Join(names, ", local."))
			for _, n := range names {
				values[n] = cty.DynamicVal
			}
			break
		}
	}
	return cty.ObjectVal(values)
}

// addResourceNamespace makes `<kind>.<name>.<attribute>` resolvable for
// the resources that expressions refer to. A resource exposes its name and
// type, the computed attributes (id,
// status) as unknown values, and those of its top-level attributes that
// other resources refer to and that do not themselves depend on a
// resource. Only referenced attributes are evaluated: most are never used
// and evaluating them all would double the work of a large configuration.
func (l *loader) addResourceNamespace(ctx *hcl.EvalContext) {
	wanted := map[lang.Address]map[string]bool{}
	var walk func(body *hclsyntax.Body)
	walk = func(body *hclsyntax.Body) {
		for _, a := range body.Attributes {
			if isLiteral(a.Expr) {
				continue
			}
			for _, tr := range a.Expr.Variables() {
				addr, ok := traversalAddress(tr)
				if !ok {
					continue
				}
				if wanted[addr] == nil {
					wanted[addr] = map[string]bool{}
				}
				if len(tr) < 3 {
					continue
				}
				if ta, ok := tr[2].(hcl.TraverseAttr); ok {
					wanted[addr][ta.Name] = true
				}
			}
		}
		for _, b := range body.Blocks {
			walk(b.Body)
		}
	}
	for _, rb := range l.resources {
		walk(rb.block.Body)
	}

	byKind := map[lang.Kind]map[string]cty.Value{}
	for _, k := range lang.Kinds {
		byKind[k] = map[string]cty.Value{}
	}
	base := func(a lang.Address) map[string]cty.Value {
		attrs := map[string]cty.Value{"name": cty.StringVal(a.Name), "type": cty.StringVal(string(a.Kind))}
		for _, c := range computedAttributes {
			attrs[c] = cty.UnknownVal(cty.String)
		}
		return attrs
	}
	// Only resources something refers to get an object.
	for _, a := range l.opts.Known {
		if wanted[a] != nil {
			byKind[a.Kind][a.Name] = cty.ObjectVal(base(a))
		}
	}
	for _, rb := range l.resources {
		if wanted[rb.addr] == nil {
			continue
		}
		attrs := base(rb.addr)
		for name := range wanted[rb.addr] {
			a, ok := rb.block.Body.Attributes[name]
			if !ok || name == "depends_on" || name == "name" || name == "type" || referencesResource(a.Expr) {
				continue
			}
			if val, ds := a.Expr.Value(ctx); !ds.HasErrors() {
				attrs[name] = val
			}
		}
		byKind[rb.addr.Kind][rb.addr.Name] = cty.ObjectVal(attrs)
	}
	for k, m := range byKind {
		ctx.Variables[string(k)] = cty.ObjectVal(m)
	}
}

func isKindRoot(name string) bool { return lang.NewSpec(lang.Kind(name)) != nil }

func referencesResource(e hclsyntax.Expression) bool {
	for _, tr := range e.Variables() {
		if isKindRoot(tr.RootName()) {
			return true
		}
	}
	return false
}

func (l *loader) resource(rb *resourceBlock, ctx *hcl.EvalContext) lang.RawResource {
	b := rb.block
	raw := lang.RawResource{Range: convertRange(b.Range()), Syntax: "hcl"}
	typeNode := &lang.Node{Kind: lang.ScalarNode, Type: lang.String, Text: b.Type, Range: convertRange(b.TypeRange)}
	nameNode := &lang.Node{Kind: lang.ScalarNode, Type: lang.String, Text: b.Labels[0], Range: convertRange(b.LabelRanges[0])}
	body := l.bodyNode(b.Body, ctx, b.Range(), "depends_on", "name", "type", "lifecycle")
	body.Block = false
	body.Entries = append([]lang.Entry{
		{Key: "type", KeyRange: typeNode.Range, Value: typeNode},
		{Key: "name", KeyRange: nameNode.Range, Value: nameNode},
	}, body.Entries...)
	raw.Body = body
	for _, reserved := range []string{"name", "type"} {
		if a, ok := b.Body.Attributes[reserved]; ok {
			l.errorf(a.NameRange, fmt.Sprintf("Unexpected attribute %q", reserved),
				"In HCL the block type gives the kind and the block label gives the name: %s %q { ... }.", b.Type, b.Labels[0])
		}
	}
	raw.Refs = l.references(rb)
	raw.Lifecycle = l.lifecycle(b.Body, ctx)
	return raw
}

// lifecycle reads a resource's lifecycle block, as in Terraform:
// prevent_destroy, create_before_destroy and ignore_changes (a list of
// field names, bare or quoted, or `all`).
func (l *loader) lifecycle(body *hclsyntax.Body, ctx *hcl.EvalContext) *lang.Lifecycle {
	var lc *lang.Lifecycle
	for _, nb := range body.Blocks {
		if nb.Type != "lifecycle" {
			continue
		}
		if lc != nil {
			l.errorf(nb.TypeRange, "Duplicate lifecycle block", "A resource has at most one lifecycle block.")
			continue
		}
		lc = &lang.Lifecycle{Range: convertRange(nb.Range())}
		for _, nested := range nb.Body.Blocks {
			l.errorf(nested.TypeRange, fmt.Sprintf("Unexpected block %q in lifecycle", nested.Type), "The lifecycle block takes prevent_destroy, create_before_destroy and ignore_changes.")
		}
		for _, a := range sortedAttrs(nb.Body) {
			switch a.Name {
			case "prevent_destroy", "create_before_destroy":
				v, ds := a.Expr.Value(ctx)
				l.addDiags(ds)
				if ds.HasErrors() {
					continue
				}
				v, _ = v.UnmarkDeep()
				if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
					l.errorf(a.Expr.Range(), fmt.Sprintf("Invalid value for %q", a.Name), "Expected true or false.")
					continue
				}
				b := v.True()
				if a.Name == "prevent_destroy" {
					lc.PreventDestroy = b
				} else {
					lc.CreateBeforeDestroy = &b
				}
			case "ignore_changes":
				lc.IgnoreChangesRange = convertRange(a.Expr.Range())
				if tr, ds := hcl.AbsTraversalForExpr(a.Expr); !ds.HasErrors() && len(tr) == 1 && tr.RootName() == "all" {
					lc.IgnoreChanges = []string{"all"}
					continue
				}
				exprs, ds := hcl.ExprList(a.Expr)
				l.addDiags(ds)
				for _, e := range exprs {
					if tr, ds := hcl.AbsTraversalForExpr(e); !ds.HasErrors() && len(tr) == 1 {
						lc.IgnoreChanges = append(lc.IgnoreChanges, tr.RootName())
						continue
					}
					v, ds := e.Value(ctx)
					v, _ = v.UnmarkDeep()
					if ds.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
						l.errorf(e.Range(), "Invalid ignore_changes entry", "Each entry is a field name such as tags or resources.")
						continue
					}
					lc.IgnoreChanges = append(lc.IgnoreChanges, v.AsString())
				}
			default:
				l.errorf(a.NameRange, fmt.Sprintf("Unexpected attribute %q in lifecycle", a.Name), "The lifecycle block takes prevent_destroy, create_before_destroy and ignore_changes.")
			}
		}
	}
	return lc
}

// references collects the resources a block refers to in expressions and
// in depends_on.
func (l *loader) references(rb *resourceBlock) []lang.Dependency {
	var deps []lang.Dependency
	var walk func(body *hclsyntax.Body)
	walk = func(body *hclsyntax.Body) {
		for _, a := range body.Attributes { // Link sorts the edges
			if a.Name == "depends_on" || isLiteral(a.Expr) {
				continue
			}
			for _, tr := range a.Expr.Variables() {
				if addr, ok := traversalAddress(tr); ok && l.addrs[addr] {
					deps = append(deps, lang.Dependency{To: addr, Range: convertRange(tr.SourceRange()), Reason: "reference"})
				}
			}
		}
		for _, nb := range body.Blocks {
			walk(nb.Body)
		}
	}
	walk(rb.block.Body)
	if a, ok := rb.block.Body.Attributes["depends_on"]; ok {
		exprs, ds := hcl.ExprList(a.Expr)
		l.addDiags(ds)
		for _, e := range exprs {
			tr, ds := hcl.AbsTraversalForExpr(e)
			addr, ok := traversalAddress(tr)
			if ds.HasErrors() || !ok || len(tr) != 2 {
				l.errorf(e.Range(), "Invalid depends_on entry", "Each entry is a resource address such as fleet.trainers or volume.data.")
				continue
			}
			if !l.addrs[addr] {
				l.errorf(e.Range(), fmt.Sprintf("Reference to undeclared resource %s", addr), "No %s named %q is declared in this configuration.", addr.Kind, addr.Name)
				continue
			}
			deps = append(deps, lang.Dependency{To: addr, Range: convertRange(e.Range()), Reason: "depends_on"})
		}
	}
	return deps
}

func traversalAddress(tr hcl.Traversal) (lang.Address, bool) {
	if len(tr) < 2 || !isKindRoot(tr.RootName()) {
		return lang.Address{}, false
	}
	ta, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return lang.Address{}, false
	}
	return lang.Address{Kind: lang.Kind(tr.RootName()), Name: ta.Name}, true
}

// bodyNode converts a block body into a mapping node: attributes become
// entries with their evaluated values, nested blocks become mappings (or a
// list of mappings when a block type repeats).
func (l *loader) bodyNode(body *hclsyntax.Body, ctx *hcl.EvalContext, rng hcl.Range, skip ...string) *lang.Node {
	out := &lang.Node{Kind: lang.MapNode, Range: convertRange(rng), Block: true}
	type item struct {
		pos   int
		entry lang.Entry
	}
	var items []item
	for _, a := range sortedAttrs(body) {
		if slices.Contains(skip, a.Name) {
			continue
		}
		items = append(items, item{a.SrcRange.Start.Byte, lang.Entry{Key: a.Name, KeyRange: convertRange(a.NameRange), Value: l.exprNode(a.Expr, ctx)}})
	}
	groups := map[string][]*hclsyntax.Block{}
	var order []string
	for _, nb := range body.Blocks {
		if slices.Contains(skip, nb.Type) {
			continue
		}
		if len(nb.Labels) > 0 {
			l.errorf(nb.LabelRanges[0], fmt.Sprintf("Unexpected label on %s block", nb.Type), "Blocks inside a resource take no labels.")
			continue
		}
		if a, clash := body.Attributes[nb.Type]; clash {
			l.errorf(nb.TypeRange, fmt.Sprintf("Duplicate field %q", nb.Type), "%q is also set as an attribute at %s.", nb.Type, convertRange(a.NameRange))
			continue
		}
		if _, seen := groups[nb.Type]; !seen {
			order = append(order, nb.Type)
		}
		groups[nb.Type] = append(groups[nb.Type], nb)
	}
	for _, t := range order {
		bs := groups[t]
		first := bs[0]
		var val *lang.Node
		if len(bs) == 1 {
			val = l.bodyNode(first.Body, ctx, first.Range())
		} else {
			val = &lang.Node{Kind: lang.ListNode, Range: lang.Range{Filename: first.TypeRange.Filename,
				Start: convertPos(first.Range().Start), End: convertPos(bs[len(bs)-1].Range().End)}}
			for _, b := range bs {
				val.Items = append(val.Items, l.bodyNode(b.Body, ctx, b.Range()))
			}
		}
		items = append(items, item{first.TypeRange.Start.Byte, lang.Entry{Key: t, KeyRange: convertRange(first.TypeRange), Value: val}})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].pos < items[j].pos })
	for _, it := range items {
		out.Entries = append(out.Entries, it.entry)
	}
	return out
}

// exprNode evaluates an expression. Object and tuple constructors are
// walked so each element keeps its own source range.
func (l *loader) exprNode(expr hclsyntax.Expression, ctx *hcl.EvalContext) *lang.Node {
	switch e := expr.(type) {
	case *hclsyntax.ObjectConsExpr:
		out := &lang.Node{Kind: lang.MapNode, Range: convertRange(e.Range())}
		for _, it := range e.Items {
			kv, ds := it.KeyExpr.Value(ctx)
			l.addDiags(ds)
			if ds.HasErrors() {
				continue
			}
			if kv.ContainsMarked() {
				// A key is part of a field's path, which plans and state
				// show.
				l.errorf(it.KeyExpr.Range(), "Sensitive value as a key", "Keys appear in plans and state; they cannot come from a sensitive variable.")
				continue
			}
			if kv.IsNull() || !kv.IsKnown() || kv.Type() != cty.String {
				l.errorf(it.KeyExpr.Range(), "Invalid key", "Object keys must be known strings.")
				continue
			}
			out.Entries = append(out.Entries, lang.Entry{Key: kv.AsString(), KeyRange: convertRange(it.KeyExpr.Range()), Value: l.exprNode(it.ValueExpr, ctx)})
		}
		return out
	case *hclsyntax.TupleConsExpr:
		out := &lang.Node{Kind: lang.ListNode, Range: convertRange(e.Range())}
		for _, it := range e.Exprs {
			out.Items = append(out.Items, l.exprNode(it, ctx))
		}
		return out
	}
	rng := convertRange(expr.Range())
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return l.valueNode(e.Val, rng)
	case *hclsyntax.TemplateExpr:
		if len(e.Parts) == 1 {
			if lit, ok := e.Parts[0].(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String {
				return l.valueNode(lit.Val, rng)
			}
		}
	}
	if isLiteral(expr) {
		val, _ := expr.Value(nil)
		return l.valueNode(val, rng)
	}
	// A reference to a resource that is not declared gets its own message
	// rather than HCL's "object has no attribute".
	undeclared := false
	for _, tr := range expr.Variables() {
		if addr, ok := traversalAddress(tr); ok && !l.addrs[addr] {
			l.errorf(tr.SourceRange(), fmt.Sprintf("Reference to undeclared resource %s", addr),
				"No %s named %q is declared in this configuration.", addr.Kind, addr.Name)
			undeclared = true
		}
	}
	if undeclared {
		return &lang.Node{Kind: lang.UnknownNode, Range: rng}
	}
	val, ds := expr.Value(ctx)
	l.addDiags(ds)
	if ds.HasErrors() {
		// Already reported; an unknown value keeps the decoder and the
		// validation rules from piling further errors on it.
		return &lang.Node{Kind: lang.UnknownNode, Range: rng}
	}
	return l.valueNode(val, rng)
}

// isLiteral reports whether an expression is a constant ("text", 8,
// true, and lists and objects of those), which needs no evaluation context
// and no reference checks. Most of a configuration is literal, and walking
// every expression for references costs more than evaluating it.
func isLiteral(expr hclsyntax.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return true
	case *hclsyntax.TemplateExpr:
		for _, p := range e.Parts {
			if _, ok := p.(*hclsyntax.LiteralValueExpr); !ok {
				return false
			}
		}
		return true
	case *hclsyntax.TupleConsExpr:
		for _, it := range e.Exprs {
			if !isLiteral(it) {
				return false
			}
		}
		return true
	case *hclsyntax.ObjectConsExpr:
		for _, it := range e.Items {
			if !isLiteralKey(it.KeyExpr) || !isLiteral(it.ValueExpr) {
				return false
			}
		}
		return true
	}
	return false
}

// isLiteralKey reports whether an object key is a bare name or a constant.
func isLiteralKey(expr hclsyntax.Expression) bool {
	k, ok := expr.(*hclsyntax.ObjectConsKeyExpr)
	if !ok {
		return isLiteral(expr)
	}
	if k.ForceNonLiteral {
		return isLiteral(k.Wrapped)
	}
	if hcl.ExprAsKeyword(k.Wrapped) != "" {
		return true
	}
	return isLiteral(k.Wrapped)
}

func (l *loader) valueNode(val cty.Value, rng lang.Range) *lang.Node {
	out := &lang.Node{Range: rng}
	if val.IsMarked() {
		out.Sensitive = isSensitive(val)
		// Elements keep their own marks.
		val, _ = val.Unmark()
	}
	switch {
	case !val.IsKnown():
		out.Kind = lang.UnknownNode
		if src, ok := l.sources[rng.Filename]; ok && rng.End.Byte <= len(src) && rng.Start.Byte <= rng.End.Byte {
			out.Ref = string(src[rng.Start.Byte:rng.End.Byte])
		}
	case val.IsNull():
		out.Kind = lang.NullNode
	case val.Type() == cty.String:
		out.Kind, out.Type, out.Text = lang.ScalarNode, lang.String, val.AsString()
	case val.Type() == cty.Number:
		bf := val.AsBigFloat()
		out.Kind = lang.ScalarNode
		if bf.IsInt() {
			i, _ := bf.Int(new(big.Int))
			out.Type, out.Text = lang.Int, i.String()
		} else {
			out.Type, out.Text = lang.Float, bf.Text('g', -1)
		}
	case val.Type() == cty.Bool:
		out.Kind, out.Type, out.Text = lang.ScalarNode, lang.Bool, fmt.Sprint(val.True())
	case val.Type().IsListType() || val.Type().IsSetType() || val.Type().IsTupleType():
		out.Kind = lang.ListNode
		for it := val.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out.Items = append(out.Items, l.valueNode(ev, rng))
		}
	case val.Type().IsMapType() || val.Type().IsObjectType():
		out.Kind = lang.MapNode
		for it := val.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			out.Entries = append(out.Entries, lang.Entry{Key: k.AsString(), KeyRange: rng, Value: l.valueNode(ev, rng)})
		}
	default:
		out.Kind = lang.UnknownNode
	}
	return out
}

func convertPos(p hcl.Pos) lang.Pos { return lang.Pos{Line: p.Line, Column: p.Column, Byte: p.Byte} }

func convertRange(r hcl.Range) lang.Range {
	return lang.Range{Filename: r.Filename, Start: convertPos(r.Start), End: convertPos(r.End)}
}

func convertDiag(d *hcl.Diagnostic) *lang.Diagnostic {
	out := &lang.Diagnostic{Severity: lang.Error, Summary: d.Summary, Detail: d.Detail}
	if d.Severity == hcl.DiagWarning {
		out.Severity = lang.Warning
	}
	if d.Subject != nil {
		r := convertRange(*d.Subject)
		out.Subject = &r
	}
	if d.Context != nil {
		r := convertRange(*d.Context)
		out.Context = &r
	}
	return out
}
