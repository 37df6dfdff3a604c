// Package load finds configuration files and loads them, whatever their
// syntax, into one lang.Config: YAML documents through yamlconf, HCL
// files (together, sharing variables and locals) through hclconf, then
// typing and validation through lang.
package load

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/hclconf"
	"github.com/dstackai/dstack-go/lang/internal/parallel"
	"github.com/dstackai/dstack-go/lang/interp"
	"github.com/dstackai/dstack-go/lang/yamlconf"
)

// Options are the inputs besides the files themselves.
type Options struct {
	// Vars are -var arguments ("name=value").
	Vars []string
	// VarFiles are -var-file paths.
	VarFiles []string
	// Environ is the process environment, for DSTACK_VAR_<name>.
	Environ []string
}

// IsConfigFile reports whether a file name is one dstack loads from a
// directory: *.dstack.hcl, *.dstack.yml, *.dstack.yaml, and the bare
// .dstack.yml / .dstack.yaml.
func IsConfigFile(name string) bool {
	base := filepath.Base(name)
	for _, suf := range []string{".dstack.hcl", ".dstack.yml", ".dstack.yaml"} {
		if strings.HasSuffix(base, suf) || base == suf {
			return true
		}
	}
	return false
}

// IsHCL reports whether a configuration file is written in HCL.
func IsHCL(name string) bool { return strings.HasSuffix(name, ".hcl") }

// Dir lists the configuration files directly in dir, sorted.
func Dir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading configuration directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && IsConfigFile(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files, nil
}

// ConfigDirs returns root and every directory below it that holds
// configuration files, sorted; hidden directories (.git, .dstack) are
// skipped.
func ConfigDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		files, err := Dir(path)
		if err != nil {
			return err
		}
		if len(files) > 0 {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("searching %s for configurations: %w", root, err)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// Files loads the given files as one configuration. The result is usable
// as far as it goes even when diagnostics hold errors; Config.Sources
// always holds every file read, for rendering the diagnostics.
//
// Files are read and parsed, and resources decoded, on all CPUs; results
// are put back in input order, so the outcome does not depend on timing.
func Files(files []string, opts Options) (*lang.Config, lang.Diagnostics) {
	type parsed struct {
		src   []byte
		docs  []lang.RawResource
		diags lang.Diagnostics
		err   error
		// binary is set for a file that is not text; diags says so.
		binary bool
	}
	results := make([]parsed, len(files))
	parallel.ForEach(len(files), func(i int) {
		name := files[i]
		src, err := readFile(name)
		if err != nil {
			results[i].err = err
			return
		}
		results[i].src = src
		if d := checkText(name, src); d != nil {
			results[i].diags, results[i].binary = lang.Diagnostics{d}, true
			return
		}
		if !IsHCL(name) {
			results[i].docs, results[i].diags = yamlconf.Parse(name, src)
		}
	})

	cfg := lang.NewConfig()
	var diags lang.Diagnostics
	var raws []lang.RawResource
	var hclFiles []hclconf.File
	var known []lang.Address
	baseDir := "."
	for i, name := range files {
		res := results[i]
		var tooLarge *TooLargeError
		switch {
		case errors.As(res.err, &tooLarge):
			diags = append(diags, lang.Errorf(lang.Range{}, "", "Configuration file too large", "%s.", res.err))
			continue
		case res.err != nil:
			diags = append(diags, lang.Errorf(lang.Range{}, "", "Cannot read configuration file", "%s.", res.err))
			continue
		}
		cfg.Files = append(cfg.Files, name)
		cfg.Sources[name] = res.src
		if res.binary {
			// Not text: neither front-end is given it.
			diags = append(diags, res.diags...)
			continue
		}
		if IsHCL(name) {
			hclFiles = append(hclFiles, hclconf.File{Name: name, Src: res.src})
			baseDir = filepath.Dir(name)
			continue
		}
		diags = append(diags, res.diags...)
		for _, d := range res.docs {
			if a, ok := peekAddress(d); ok {
				known = append(known, a)
			}
		}
		raws = append(raws, res.docs...)
	}
	if len(hclFiles) > 0 {
		res, ds := hclconf.LoadConfig(hclFiles, hclconf.Options{
			Vars: opts.Vars, VarFiles: opts.VarFiles, Environ: opts.Environ, BaseDir: baseDir, Known: known,
		})
		diags = append(diags, ds...)
		raws = append(raws, res.Resources...)
		cfg.Backend = res.Backend
	} else if len(opts.Vars) > 0 || len(opts.VarFiles) > 0 {
		diags = append(diags, lang.Warnf(lang.Range{}, "", "Variables given without HCL files", "-var and -var-file apply to HCL configurations; no HCL file was loaded."))
	}

	// HCL values may come from variables (-var, files, DSTACK_VAR_*), so
	// an HCL resource may hold a reference its own file does not show.
	hclRefs := len(opts.Vars) > 0 || len(opts.VarFiles) > 0
	for _, kv := range opts.Environ {
		hclRefs = hclRefs || (strings.HasPrefix(kv, "DSTACK_VAR_") && strings.Contains(kv, "${{"))
	}
	for _, f := range hclFiles {
		hclRefs = hclRefs || bytes.Contains(f.Src, []byte("${{"))
	}
	decoded := make([]*lang.Resource, len(raws))
	decodeDiags := make([]lang.Diagnostics, len(raws))
	parallel.ForEach(len(raws), func(i int) {
		decoded[i], decodeDiags[i] = lang.DecodeResource(raws[i])
	})
	for i, r := range decoded {
		diags = append(diags, decodeDiags[i]...)
		if r == nil {
			continue
		}
		if d := cfg.Add(r); d != nil {
			diags = append(diags, d)
		}
		// ${{ ... }} references: syntax, and the namespaces each field
		// takes (the secrets' names are the planner's to check). Only
		// where one may be: checking encodes the resource.
		if mayRefer(r, cfg.Sources, hclRefs) {
			diags = append(diags, interp.Check(r)...)
		}
	}
	diags = append(diags, cfg.Link()...)
	interp.LinkVolumes(cfg)
	hintReferences(diags, cfg.Sources)
	diags.Sort()
	return cfg, diags
}

// mayRefer reports whether r may hold a ${{ ... }} reference: a YAML
// resource when its file has one, an HCL one when any HCL input may.
func mayRefer(r *lang.Resource, sources map[string][]byte, hclRefs bool) bool {
	if r.Syntax == "hcl" {
		return hclRefs
	}
	src, ok := sources[r.Range.Filename]
	return !ok || bytes.Contains(src, []byte("${{"))
}

// hintReferences explains an HCL syntax error on a line that holds a
// dstack reference: HCL reads "${" as its own template, so dstack's
// ${{ secrets.NAME }} is written $${{ secrets.NAME }} there.
func hintReferences(diags lang.Diagnostics, sources map[string][]byte) {
	for _, d := range diags {
		if d.Severity != lang.Error || d.Subject == nil || !IsHCL(d.Subject.Filename) {
			continue
		}
		src := sources[d.Subject.Filename]
		start := min(max(d.Subject.Start.Byte, 0), len(src))
		lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
		lineEnd := bytes.IndexByte(src[start:], '\n')
		if lineEnd < 0 {
			lineEnd = len(src) - start
		}
		line := src[lineStart : start+lineEnd]
		if i := bytes.Index(line, []byte("${{")); i >= 0 && (i == 0 || line[i-1] != '$') {
			d.Detail = strings.TrimSpace(d.Detail + " In HCL, write dstack's references with $$ (which HCL turns into $): \"$${{ secrets.NAME }}\".")
		}
	}
}

// MaxFileSize is the largest configuration file dstack reads: 10 MiB,
// hundreds of times a large real configuration, yet a bound on what a
// stray file makes dstack hold in memory, print in diagnostics and copy
// into every saved plan (which keeps the configuration's sources).
const MaxFileSize = 10 << 20

// TooLargeError is the error for a configuration file over MaxFileSize.
type TooLargeError struct {
	Name string
	Size int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %.1f MiB; configuration files may be at most %d MiB (split it into several files)",
		e.Name, float64(e.Size)/(1<<20), MaxFileSize>>20)
}

// readFile reads a configuration file, refusing one over MaxFileSize
// before reading it.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if st.Size() > MaxFileSize {
		return nil, &TooLargeError{Name: name, Size: st.Size()}
	}
	// The size can change under us (a file being written): read one byte
	// past the limit to tell.
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(src) > MaxFileSize {
		return nil, &TooLargeError{Name: name, Size: int64(len(src))}
	}
	return src, nil
}

// checkText reports a file that is not text, as git tells one: a NUL
// byte. Parsing a binary file gives an error for nearly every byte (the
// HCL scanner: one per invalid character), none of them helpful.
func checkText(name string, src []byte) *lang.Diagnostic {
	i := bytes.IndexByte(src, 0)
	if i < 0 {
		return nil
	}
	line := 1 + bytes.Count(src[:i], []byte("\n"))
	lineStart := bytes.LastIndexByte(src[:i], '\n') + 1
	col := 1 + utf8.RuneCount(src[lineStart:i])
	rng := lang.Range{Filename: name, Start: lang.Pos{Line: line, Column: col, Byte: i}, End: lang.Pos{Line: line, Column: col + 1, Byte: i + 1}}
	return lang.Errorf(rng, "", "Configuration file is not text",
		"%s holds a NUL byte at line %d, column %d, as binary files do; configuration files are UTF-8 text.", name, line, col)
}

// peekAddress reads the address a YAML document will have, so HCL files
// in the same configuration can refer to it.
func peekAddress(raw lang.RawResource) (lang.Address, bool) {
	t, ok := raw.Body.Get("type")
	if !ok || t.Value.Kind != lang.ScalarNode {
		return lang.Address{}, false
	}
	name := raw.DefaultName
	if n, ok := raw.Body.Get("name"); ok {
		name = n.Value.Text
	}
	a := lang.Address{Kind: lang.Kind(t.Value.Text), Name: name}
	return a, lang.NewSpec(a.Kind) != nil && lang.ValidName(name)
}

// Path loads a directory's configuration files, or a single file.
func Path(path string, opts Options) (*lang.Config, lang.Diagnostics) {
	st, err := os.Stat(path)
	if err != nil {
		return lang.NewConfig(), lang.Diagnostics{lang.Errorf(lang.Range{}, "", "Cannot read configuration", "%s.", err)}
	}
	if !st.IsDir() {
		return Files([]string{path}, opts)
	}
	files, err := Dir(path)
	if err != nil {
		return lang.NewConfig(), lang.Diagnostics{lang.Errorf(lang.Range{}, "", "Cannot read configuration", "%s.", err)}
	}
	if len(files) == 0 {
		return lang.NewConfig(), lang.Diagnostics{lang.Errorf(lang.Range{}, "", "No configuration files",
			"%s holds no *.dstack.hcl, *.dstack.yml or .dstack.yml files.", path)}
	}
	return Files(files, opts)
}
