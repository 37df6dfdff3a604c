package dstack_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNamedKeys: the keys several packages share (instance and object
// attribute keys, apply event types, journal ops) are written through
// their constants (planner.Attr*, providers.Attr*, planner.Event*, the
// journal* ops), never as string literals, so that a key cannot drift
// between the package that writes it and those that read it.
func TestNamedKeys(t *testing.T) {
	fset := token.NewFileSet()
	var problems []string
	for _, dir := range []string{"cmd", "planner", "providers", "terraform-provider-dstack"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			problems = append(problems, literalKeys(fset, f)...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// literalKeys finds string literals used as keys in f: X.Attributes["k"],
// X.Attributes = map[...]...{"k": ...}, Event{Type: "t"} and
// record{Op: "o"}.
func literalKeys(fset *token.FileSet, f *ast.File) []string {
	var out []string
	report := func(n ast.Node, what string) {
		out = append(out, fmt.Sprintf("%s: %s is a string literal; use its constant", fset.Position(n.Pos()), what))
	}
	isAttributes := func(e ast.Expr) bool {
		s, ok := e.(*ast.SelectorExpr)
		return ok && s.Sel.Name == "Attributes"
	}
	isString := func(e ast.Expr) bool {
		l, ok := e.(*ast.BasicLit)
		return ok && l.Kind == token.STRING
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IndexExpr:
			if isAttributes(n.X) && isString(n.Index) {
				report(n.Index, "an attribute key")
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				if i >= len(n.Rhs) || !isAttributes(lhs) {
					continue
				}
				if cl, ok := n.Rhs[i].(*ast.CompositeLit); ok {
					for _, e := range cl.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok && isString(kv.Key) {
							report(kv.Key, "an attribute key")
						}
					}
				}
			}
		case *ast.CompositeLit:
			typ := ""
			switch t := n.Type.(type) {
			case *ast.Ident:
				typ = t.Name
			case *ast.SelectorExpr:
				typ = t.Sel.Name
			}
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok || !isString(kv.Value) {
					continue
				}
				k, _ := kv.Key.(*ast.Ident)
				switch {
				case k == nil:
				case typ == "Event" && k.Name == "Type":
					report(kv.Value, "an event type")
				case typ == "record" && k.Name == "Op":
					report(kv.Value, "a journal op")
				}
			}
		}
		return true
	})
	return out
}

// TestNamedKeysCatch: the check finds each kind of literal key.
func TestNamedKeysCatch(t *testing.T) {
	src := `package p
func f() {
	_ = in.Attributes["ip"]
	o.Attributes = map[string]string{"hostname": h}
	emit(planner.Event{Type: "step_start"})
	write(&record{Op: "put-instance"})
	_ = in.Attributes[providers.AttrIP]
	emit(Event{Type: EventStepDone})
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := literalKeys(fset, f)
	want := []string{"p.go:3:20: an attribute key", "p.go:4:35: an attribute key", "p.go:5:27: an event type", "p.go:6:20: a journal op"}
	if len(got) != len(want) {
		t.Fatalf("found %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("found %q, want %q", got[i], want[i])
		}
	}
}
