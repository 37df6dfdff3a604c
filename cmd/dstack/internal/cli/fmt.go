package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/google/renameio/v2"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/hclconf"
	"github.com/dstackai/dstack-go/lang/load"
)

type fmtArgs struct {
	check, diff, list, recursive, noColor bool
	write                                 bool
	paths                                 []string
}

func runFmt(argv []string, s Streams, env Env) int {
	a := fmtArgs{}
	fset := newFlagSet("fmt", "fmt [options] [PATH...]\n\nRewrites *.dstack.hcl files (and .hcl files named directly) in canonical\nformat. Exit status: 0 ok, 1 error, 3 with -check when a file would change.", s)
	fset.BoolVar(&a.check, "check", false, "only check: exit 3 when any file is not formatted, write nothing")
	fset.BoolVar(&a.diff, "diff", false, "print the changes as a unified diff")
	fset.BoolVar(&a.list, "list", true, "print the names of files that change")
	fset.BoolVar(&a.write, "write", true, "write the result to the files")
	fset.BoolVar(&a.recursive, "recursive", false, "also process directories below")
	fset.BoolVar(&a.noColor, "no-color", false, "disable colours")
	paths, err := parseFlags(fset, argv)
	if err != nil {
		return flagExit(err)
	}
	a.paths = paths
	if len(a.paths) == 0 {
		a.paths = []string{"."}
	}
	if a.check {
		a.write = false
	}
	var files []string
	for _, p := range a.paths {
		found, err := hclFiles(p, a.recursive)
		if err != nil {
			fmt.Fprintf(s.Stderr, "dstack fmt: %v\n", err)
			return ExitInvalid
		}
		files = append(files, found...)
	}
	changed := false
	var diags lang.Diagnostics
	sources := map[string][]byte{}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(s.Stderr, "dstack fmt: %v\n", err)
			return ExitInvalid
		}
		sources[name] = src
		if _, ds := hclsyntax.ParseConfig(src, name, hcl.InitialPos); ds.HasErrors() {
			diags = append(diags, hclconf.ConvertDiagnostics(ds)...)
			continue
		}
		out := hclwrite.Format(src)
		if bytes.Equal(out, src) {
			continue
		}
		changed = true
		if a.list {
			fmt.Fprintln(s.Stdout, name)
		}
		if a.diff {
			fmt.Fprint(s.Stdout, unifiedDiff(name, string(src), string(out)))
		}
		if a.write {
			if err := writeFile(name, out); err != nil {
				fmt.Fprintf(s.Stderr, "dstack fmt: %v\n", err)
				return ExitInvalid
			}
		}
	}
	if len(diags) > 0 {
		_ = lang.WriteText(s.Stderr, diags, sources, lang.TextOptions{Color: useColor(s.Stderr, env, a.noColor)})
		return ExitInvalid
	}
	if a.check && changed {
		return ExitChanged
	}
	return ExitOK
}

// hclFiles lists the HCL files under path: a file named directly is taken
// whatever its name; in directories, *.dstack.hcl files.
func hclFiles(path string, recursive bool) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if load.IsConfigFile(p) && load.IsHCL(p) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// writeFile replaces a file atomically (temporary file, fsync, rename), so
// an interrupted fmt never leaves a half-written file.
func writeFile(name string, data []byte) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(name, data, st.Mode().Perm()); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func unifiedDiff(name, before, after string) string {
	return udiff.Unified("a/"+name, "b/"+name, before, after)
}
