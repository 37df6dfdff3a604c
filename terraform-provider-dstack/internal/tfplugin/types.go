package tfplugin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// TypeKind is the kind of a Terraform value type.
type TypeKind int

// The kinds of types the provider uses.
const (
	String TypeKind = iota + 1
	Number
	Bool
	List
	Map
	Object
	// Dynamic takes a value of any type, chosen by the configuration:
	// for model types written in several forms (a number, a string or
	// an object).
	Dynamic
)

// Type is a Terraform value type.
type Type struct {
	Kind TypeKind
	// Elem is the element type of a List or Map.
	Elem *Type
	// Attrs are the attribute types of an Object.
	Attrs map[string]Type
}

// Common types.
var (
	StringType = Type{Kind: String}
	NumberType = Type{Kind: Number}
	BoolType   = Type{Kind: Bool}
	// DynamicType is the type of an attribute whose value may be of any
	// type.
	DynamicType = Type{Kind: Dynamic}
)

// ListOf returns the type of a list of t.
func ListOf(t Type) Type { return Type{Kind: List, Elem: &t} }

// MapOf returns the type of a map of t.
func MapOf(t Type) Type { return Type{Kind: Map, Elem: &t} }

// ObjectOf returns an object type.
func ObjectOf(attrs map[string]Type) Type { return Type{Kind: Object, Attrs: attrs} }

func (t Type) String() string {
	switch t.Kind {
	case String:
		return "string"
	case Number:
		return "number"
	case Bool:
		return "bool"
	case List:
		return "list(" + t.Elem.String() + ")"
	case Map:
		return "map(" + t.Elem.String() + ")"
	case Object:
		return "object"
	case Dynamic:
		return "dynamic"
	}
	return "invalid"
}

// Schema describes a resource, a data source or the provider's
// configuration.
type Schema struct {
	// Version is the resource's state schema version: a state written
	// with a lower one goes through the resource's Upgrade.
	Version int64
	Block   Block
}

// Block is a set of attributes and nested blocks.
type Block struct {
	Description string
	Attributes  []Attribute
	Blocks      []NestedBlock
}

// Attribute is one attribute of a block.
type Attribute struct {
	Name        string
	Type        Type
	Description string
	Required    bool
	Optional    bool
	Computed    bool
	Sensitive   bool
	// Deprecated, when set, says what to use instead.
	Deprecated string
}

// Nesting says how many of a nested block may be written.
type Nesting int

// The nesting modes.
const (
	// Single is at most one block; its value is an object or null.
	Single Nesting = iota + 1
	// ListNesting is any number of blocks, in order.
	ListNesting
)

// NestedBlock is a block type inside a block.
type NestedBlock struct {
	Name     string
	Nesting  Nesting
	Block    Block
	MaxItems int
}

// ValueType returns the object type of values of the block.
func (b Block) ValueType() Type {
	attrs := map[string]Type{}
	for _, a := range b.Attributes {
		attrs[a.Name] = a.Type
	}
	for _, nb := range b.Blocks {
		t := nb.Block.ValueType()
		if nb.Nesting == ListNesting {
			t = ListOf(t)
		}
		attrs[nb.Name] = t
	}
	return ObjectOf(attrs)
}

// Attribute returns the attribute named name, if any.
func (b Block) Attribute(name string) (Attribute, bool) {
	for _, a := range b.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// NestedBlock returns the nested block named name, if any.
func (b Block) NestedBlock(name string) (NestedBlock, bool) {
	for _, nb := range b.Blocks {
		if nb.Name == name {
			return nb, true
		}
	}
	return NestedBlock{}, false
}

// Unknown is a value known only after apply. Values are plain Go data:
// nil (null), Unknown{}, string, float64, bool, []any, map[string]any.
type Unknown struct{}

// IsUnknown reports whether v is unknown.
func IsUnknown(v any) bool { _, ok := v.(Unknown); return ok }

// HasUnknown reports whether v is unknown or holds an unknown value.
func HasUnknown(v any) bool {
	switch v := v.(type) {
	case Unknown:
		return true
	case []any:
		for _, e := range v {
			if HasUnknown(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if HasUnknown(e) {
				return true
			}
		}
	}
	return false
}

// Key is a map key step of a Path.
type Key string

// Path points at a value inside a resource: attribute and block names
// (string), list indexes (int) and map keys (Key).
type Path []any

func (p Path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		case Key:
			b.WriteString("[" + strconv.Quote(string(s)) + "]")
		}
	}
	return b.String()
}

// Severity says whether a diagnostic fails the operation.
type Severity int

// The severities.
const (
	Error Severity = iota + 1
	Warning
)

// Diagnostic is a problem reported to Terraform, which shows it with the
// configuration at Path.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	Path     Path
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errorf appends an error diagnostic.
func (ds *Diagnostics) Errorf(path Path, summary, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Severity: Error, Summary: summary, Detail: fmt.Sprintf(format, args...), Path: path})
}

// FromError appends an error diagnostic for a failure of the world (a
// provider call, the agent): no attribute is at fault.
func (ds *Diagnostics) FromError(summary string, err error) {
	*ds = append(*ds, Diagnostic{Severity: Error, Summary: summary, Detail: err.Error()})
}

// Provider is what the adapter serves.
type Provider struct {
	// Config is the schema of the provider block.
	Config Schema
	// Configure receives the provider block's value; it is called once,
	// before any resource or data source call.
	Configure   func(ctx context.Context, config map[string]any) Diagnostics
	Resources   map[string]Resource
	DataSources map[string]DataSource
}

// Resource is one managed resource type. Values passed in and out are
// objects of the schema's block (map[string]any), or nil for null.
type Resource interface {
	Schema() Schema
	// Validate checks a configuration that may hold unknown values.
	Validate(ctx context.Context, config map[string]any) Diagnostics
	// Upgrade turns a stored state of an older schema version (or of
	// the current one, as JSON) into a value of the current schema.
	Upgrade(ctx context.Context, version int64, raw map[string]any) (map[string]any, Diagnostics)
	Read(ctx context.Context, req ReadRequest) ReadResponse
	Plan(ctx context.Context, req PlanRequest) PlanResponse
	Apply(ctx context.Context, req ApplyRequest) ApplyResponse
	// Import adopts an existing object by the ID the user gave.
	Import(ctx context.Context, id string) ImportResponse
}

// ReadRequest asks for the resource's current state.
type ReadRequest struct {
	State   map[string]any
	Private []byte
}

// ReadResponse is the refreshed state; a nil State means the resource
// is gone.
type ReadResponse struct {
	State       map[string]any
	Private     []byte
	Diagnostics Diagnostics
}

// PlanRequest asks what applying config would do. Prior is nil for a
// create; Proposed is nil for a destroy.
type PlanRequest struct {
	Prior, Proposed, Config map[string]any
	PriorPrivate            []byte
}

// PlanResponse is the planned state and the paths whose change forces a
// replacement.
type PlanResponse struct {
	Planned         map[string]any
	RequiresReplace []Path
	PlannedPrivate  []byte
	Diagnostics     Diagnostics
}

// ApplyRequest carries out a planned change. Prior is nil for a create;
// Planned is nil for a destroy.
type ApplyRequest struct {
	Prior, Planned, Config map[string]any
	PlannedPrivate         []byte
}

// ApplyResponse is the new state (nil after a destroy).
type ApplyResponse struct {
	State       map[string]any
	Private     []byte
	Diagnostics Diagnostics
}

// ImportResponse is the adopted state.
type ImportResponse struct {
	State       map[string]any
	Private     []byte
	Diagnostics Diagnostics
}

// DataSource is one data source type.
type DataSource interface {
	Schema() Schema
	Read(ctx context.Context, config map[string]any) (map[string]any, Diagnostics)
}
