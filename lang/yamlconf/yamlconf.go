// Package yamlconf reads dstack's YAML configuration format into the lang
// model: one resource per document, several documents per file, `type:`
// naming the kind. It only turns YAML into lang.Nodes with exact source
// ranges; lang.DecodeResource does the rest, the same as for HCL.
package yamlconf

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/dstackai/dstack-go/lang"
)

// maxAliasExpansions bounds how many alias references one file may expand,
// so a "billion laughs" document cannot exhaust memory.
const maxAliasExpansions = 10000

// Parse reads every document of a YAML file. It returns the raw resources
// found and the syntax problems; a document with a syntax error stops the
// file, since the YAML stream cannot be resynchronised after it.
func Parse(filename string, src []byte) ([]lang.RawResource, lang.Diagnostics) {
	c := &converter{filename: filename, src: src, lines: lineStarts(src)}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	var diags lang.Diagnostics
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			diags = append(diags, c.syntaxError(err))
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		docs = append(docs, doc.Content[0])
	}
	var out []lang.RawResource
	unnamed := 0
	for _, root := range docs {
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document
		}
		body := c.convert(root, 0)
		if c.err != nil {
			diags = append(diags, c.err)
			return out, diags
		}
		raw := lang.RawResource{Body: body, Range: body.Range, Syntax: "yaml"}
		if _, named := body.Get("name"); !named && body.Kind == lang.MapNode {
			raw.DefaultName = lang.DefaultName(filename, unnamed)
			unnamed++
		}
		out = append(out, raw)
	}
	return out, diags
}

type converter struct {
	filename string
	src      []byte
	lines    []int
	aliases  int
	err      *lang.Diagnostic
	// last is the position pos found last: nodes come in source order, so
	// the next one on the same line is found from there rather than from
	// the line's start, which on a long line (a minified flow mapping of
	// megabytes) made converting quadratic.
	last lang.Pos
}

func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, b := range src {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// pos converts yaml's 1-based line and character column into a Pos.
func (c *converter) pos(line, col int) lang.Pos {
	if line < 1 || line > len(c.lines) {
		return lang.Pos{Line: line, Column: col}
	}
	off, i := c.lines[line-1], 1
	if c.last.Line == line && c.last.Column <= col {
		off, i = c.last.Byte, c.last.Column
	}
	for ; i < col && off < len(c.src) && c.src[off] != '\n'; i++ {
		_, size := utf8.DecodeRune(c.src[off:])
		off += size
	}
	c.last = lang.Pos{Line: line, Column: i, Byte: off}
	return lang.Pos{Line: line, Column: col, Byte: off}
}

// advance moves a position forward over n bytes of the source.
func (c *converter) advance(p lang.Pos, n int) lang.Pos {
	for i := 0; i < n && p.Byte < len(c.src); {
		r, size := utf8.DecodeRune(c.src[p.Byte:])
		p.Byte += size
		i += size
		if r == '\n' {
			p.Line++
			p.Column = 1
		} else {
			p.Column++
		}
	}
	return p
}

func (c *converter) syntaxError(err error) *lang.Diagnostic {
	var le *yaml.LoadError
	rng := lang.Range{Filename: c.filename}
	msg := err.Error()
	if errors.As(err, &le) {
		msg = le.Message
		line, col := le.Mark.Line, le.Mark.Column
		if line < 1 || line > len(c.lines) {
			line, col = 1, 1 // the reader fails before it counts lines (bad encoding)
		}
		start := c.pos(line, max(col, 1))
		rng.Start, rng.End = start, c.advance(start, 1)
	} else {
		rng.Start, rng.End = lang.Pos{Line: 1, Column: 1}, c.advance(lang.Pos{Line: 1, Column: 1}, 1)
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	d := lang.Errorf(rng, "", "Invalid YAML", "%s.", strings.TrimSuffix(capitalize(msg), "."))
	return d
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// scalarEnd finds where a scalar ends in the source. Plain scalars on one
// line end after their text; quoted ones are scanned to the closing quote
// so escapes are accounted for; block scalars are given their first line.
func (c *converter) scalarEnd(n *yaml.Node, start lang.Pos) lang.Pos {
	src := c.src
	i := start.Byte
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0 && i < len(src) && src[i] == '"':
		for j := i + 1; j < len(src); j++ {
			if src[j] == '\\' {
				j++
				continue
			}
			if src[j] == '"' {
				return c.advance(start, j+1-i)
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0 && i < len(src) && src[i] == '\'':
		for j := i + 1; j < len(src); j++ {
			if src[j] == '\'' {
				if j+1 < len(src) && src[j+1] == '\'' {
					j++
					continue
				}
				return c.advance(start, j+1-i)
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
	default:
		if !strings.Contains(n.Value, "\n") && i+len(n.Value) <= len(src) && string(src[i:i+len(n.Value)]) == n.Value {
			return c.advance(start, len(n.Value))
		}
	}
	// Fall back to the rest of the line.
	j := i
	for j < len(src) && src[j] != '\n' {
		j++
	}
	return c.advance(start, max(j-i, 1))
}

func (c *converter) convert(n *yaml.Node, depth int) *lang.Node {
	if c.err != nil {
		return &lang.Node{Kind: lang.NullNode}
	}
	start := c.pos(n.Line, n.Column)
	out := &lang.Node{Range: lang.Range{Filename: c.filename, Start: start, End: start}}
	if depth > 200 {
		c.err = lang.Errorf(out.Range, "", "Invalid YAML", "The document nests deeper than 200 levels.")
		return out
	}
	switch n.Kind {
	case yaml.AliasNode:
		c.aliases++
		if c.aliases > maxAliasExpansions {
			c.err = lang.Errorf(out.Range, "", "Invalid YAML", "Too many alias expansions (over %d).", maxAliasExpansions)
			return out
		}
		target := c.convert(n.Alias, depth+1)
		alias := *target
		alias.Range = lang.Range{Filename: c.filename, Start: start, End: c.advance(start, len(n.Value)+1)}
		return &alias
	case yaml.ScalarNode:
		out.Range.End = c.scalarEnd(n, start)
		out.Text = n.Value
		switch n.ShortTag() {
		case "!!null":
			out.Kind = lang.NullNode
		case "!!int":
			out.Kind, out.Type = lang.ScalarNode, lang.Int
		case "!!float":
			out.Kind, out.Type = lang.ScalarNode, lang.Float
		case "!!bool":
			out.Kind, out.Type = lang.ScalarNode, lang.Bool
			out.Text = strings.ToLower(n.Value)
		default:
			out.Kind, out.Type = lang.ScalarNode, lang.String
		}
	case yaml.SequenceNode:
		out.Kind = lang.ListNode
		for _, it := range n.Content {
			child := c.convert(it, depth+1)
			out.Items = append(out.Items, child)
			out.Range.End = child.Range.End
		}
		if len(n.Content) == 0 {
			out.Range.End = c.advance(start, 2)
		}
	case yaml.MappingNode:
		out.Kind = lang.MapNode
		var merges []*lang.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			val := c.convert(v, depth+1)
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, val)
				continue
			}
			key := c.convert(k, depth+1)
			if c.err != nil {
				return out // keep the first error, not a "key" made up after it
			}
			if key.Kind != lang.ScalarNode {
				c.err = lang.Errorf(key.Range, "", "Invalid key", "Mapping keys must be strings, got a %s.", key.Kind)
				return out
			}
			out.Entries = append(out.Entries, lang.Entry{Key: key.Text, KeyRange: key.Range, Value: val})
			out.Range.End = val.Range.End
			if val.Kind == lang.NullNode && val.Range.End.Byte <= key.Range.End.Byte {
				out.Range.End = key.Range.End
			}
		}
		// Explicit keys win over merged ones, wherever the merge key stands.
		for _, m := range merges {
			c.merge(out, m)
		}
		if len(n.Content) == 0 {
			out.Range.End = c.advance(start, 2)
		}
	default:
		c.err = lang.Errorf(out.Range, "", "Invalid YAML", "Unexpected node kind %d.", n.Kind)
	}
	return out
}

// merge applies a YAML merge key (`<<: *base`): keys of the merged
// mappings that the mapping does not set itself are added.
func (c *converter) merge(into, from *lang.Node) {
	sources := []*lang.Node{from}
	if from.Kind == lang.ListNode {
		sources = from.Items
	}
	for _, s := range sources {
		if s.Kind != lang.MapNode {
			c.err = lang.Errorf(s.Range, "", "Invalid merge", "A merge key (<<) takes a mapping or a list of mappings, got %s.", s.Kind)
			return
		}
		for _, e := range s.Entries {
			if _, exists := into.Get(e.Key); !exists {
				into.Entries = append(into.Entries, e)
			}
		}
	}
}
