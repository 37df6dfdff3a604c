// Package load finds configuration files and loads them, whatever their
// syntax, into one lang.Config: YAML documents through yamlconf, HCL
// files (together, sharing variables and locals) through hclconf, then
// typing and validation through lang.
package load

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/hclconf"
	"github.com/dstackai/dstack-go/lang/internal/parallel"
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
	}
	results := make([]parsed, len(files))
	parallel.ForEach(len(files), func(i int) {
		name := files[i]
		src, err := os.ReadFile(name)
		if err != nil {
			results[i].err = err
			return
		}
		results[i].src = src
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
		if res.err != nil {
			diags = append(diags, lang.Errorf(lang.Range{}, "", "Cannot read configuration file", "%s.", res.err))
			continue
		}
		cfg.Files = append(cfg.Files, name)
		cfg.Sources[name] = res.src
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
	}
	diags = append(diags, cfg.Link()...)
	diags.Sort()
	return cfg, diags
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
