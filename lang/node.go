package lang

import "strings"

// NodeKind says what a Node holds.
type NodeKind int

const (
	// NullNode is an explicit null (YAML `~`/`null`, HCL `null`).
	NullNode NodeKind = iota
	// ScalarNode is a string, number or bool.
	ScalarNode
	// MapNode is a mapping with string keys in source order.
	MapNode
	// ListNode is a sequence.
	ListNode
	// UnknownNode is a value only known after apply (an HCL reference to
	// an attribute such as volume.data.id).
	UnknownNode
)

func (k NodeKind) String() string {
	switch k {
	case NullNode:
		return "null"
	case ScalarNode:
		return "scalar"
	case MapNode:
		return "mapping"
	case ListNode:
		return "list"
	case UnknownNode:
		return "unknown value"
	}
	return "invalid"
}

// ScalarType is the type a scalar was written as.
type ScalarType int

const (
	// String scalars; YAML plain scalars that are not numbers or bools too.
	String ScalarType = iota
	// Int scalars.
	Int
	// Float scalars.
	Float
	// Bool scalars.
	Bool
)

func (t ScalarType) String() string {
	return [...]string{"string", "integer", "number", "bool"}[t]
}

// Node is one value of a configuration document with its source range. The
// YAML and HCL front-ends both turn their syntax trees into Nodes; one
// reflection-driven decoder (Decode) then fills the model from them, so the
// model is the only place that knows field names and types.
type Node struct {
	Kind  NodeKind
	Range Range
	// Text is a scalar as written (YAML `python: 3.10` stays "3.10").
	Text string
	// Type is the scalar's type.
	Type ScalarType
	// Entries of a MapNode, in source order.
	Entries []Entry
	// Items of a ListNode.
	Items []*Node
	// Block is set on a MapNode that came from a single HCL block, so that
	// one `volume { ... }` block can fill a list field.
	Block bool
	// Ref is the HCL expression an UnknownNode came from.
	Ref string
	// Sensitive is set on a value computed from a sensitive HCL variable:
	// the decoder records its path, and it is never shown.
	Sensitive bool
}

// Entry is one key of a MapNode.
type Entry struct {
	Key      string
	KeyRange Range
	Value    *Node
}

// Get returns the value for key and whether it was present.
func (n *Node) Get(key string) (*Entry, bool) {
	if n == nil || n.Kind != MapNode {
		return nil, false
	}
	for i := range n.Entries {
		if n.Entries[i].Key == key {
			return &n.Entries[i], true
		}
	}
	return nil, false
}

// firstIndex returns the index of the first entry with key, looking no
// further than limit (the entry being checked). Mappings in configurations
// are small, so a scan beats building a set for each one.
func (n *Node) firstIndex(key string, limit int) int {
	for i := range limit {
		if n.Entries[i].Key == key {
			return i
		}
	}
	return limit
}

// Without returns a copy of a MapNode without the given keys.
func (n *Node) Without(keys ...string) *Node {
	c := *n
	c.Entries = make([]Entry, 0, len(n.Entries))
	for _, e := range n.Entries {
		skip := false
		for _, k := range keys {
			if e.Key == k {
				skip = true
				break
			}
		}
		if !skip {
			c.Entries = append(c.Entries, e)
		}
	}
	return &c
}

// describe names the node's type for error messages.
func (n *Node) describe() string {
	switch n.Kind {
	case ScalarNode:
		switch n.Type {
		case String:
			return "a string"
		case Int:
			return "an integer"
		}
		return "a " + n.Type.String()
	case MapNode:
		return "a mapping"
	case ListNode:
		return "a list"
	case NullNode:
		return "null"
	}
	return "a value known only after apply"
}

// joinPath appends a field name to a dotted path.
func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	if strings.HasPrefix(field, "[") {
		return path + field
	}
	return path + "." + field
}
