package cli

import (
	"fmt"
	"os"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
)

var suggest = lang.Suggest

type validateArgs struct {
	paths    []string
	files    []string
	json     bool
	noColor  bool
	vars     []string
	varFiles []string
}

func runValidate(argv []string, s Streams, env Env) int {
	var a validateArgs
	fs := newFlagSet("validate", "validate [options] [DIR...]\n\nChecks every configuration in each DIR (default: the current directory) and\nthe directories below it; each directory is one configuration. Files given\nwith -f are checked together as one configuration.\n\nExit status: 0 valid, 1 invalid.", s)
	fs.Var((*stringList)(&a.files), "f", "a configuration `FILE` (repeatable)")
	fs.BoolVar(&a.json, "json", false, "print diagnostics as JSON, in the shape of terraform validate -json")
	fs.BoolVar(&a.noColor, "no-color", false, "disable colours")
	fs.Var((*stringList)(&a.vars), "var", "set a variable: `NAME=VALUE` (repeatable)")
	fs.Var((*stringList)(&a.varFiles), "var-file", "read variables from `FILE` (repeatable)")
	paths, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	a.paths = paths
	if len(a.paths) == 0 && len(a.files) == 0 {
		a.paths = []string{"."}
	}
	opts := load.Options{Vars: a.vars, VarFiles: a.varFiles, Environ: env}

	type result struct {
		name  string
		cfg   *lang.Config
		diags lang.Diagnostics
	}
	var results []result
	var fatal lang.Diagnostics
	if len(a.files) > 0 {
		cfg, diags := load.Files(a.files, opts)
		results = append(results, result{fmt.Sprint(a.files), cfg, diags})
	}
	for _, p := range a.paths {
		st, err := os.Stat(p)
		if err != nil {
			fatal = append(fatal, lang.Errorf(lang.Range{}, "", "Cannot read configuration", "%s.", err))
			continue
		}
		if !st.IsDir() {
			cfg, diags := load.Files([]string{p}, opts)
			results = append(results, result{p, cfg, diags})
			continue
		}
		dirs, err := load.ConfigDirs(p)
		if err != nil {
			fatal = append(fatal, lang.Errorf(lang.Range{}, "", "Cannot read configuration", "%s.", err))
			continue
		}
		if len(dirs) == 0 {
			fatal = append(fatal, lang.Errorf(lang.Range{}, "", "No configuration files",
				"%s holds no *.dstack.hcl, *.dstack.yml or .dstack.yml files.", p))
		}
		for _, d := range dirs {
			cfg, diags := load.Path(d, opts)
			results = append(results, result{d, cfg, diags})
		}
	}

	all := append(lang.Diagnostics(nil), fatal...)
	sources := map[string][]byte{}
	for _, r := range results {
		all = append(all, r.diags...)
		for k, v := range r.cfg.Sources {
			sources[k] = v
		}
	}
	if a.json {
		if err := lang.WriteJSON(s.Stdout, all, sources); err != nil {
			fmt.Fprintf(s.Stderr, "dstack: writing output: %v\n", err)
			return ExitInvalid
		}
		if all.HasErrors() {
			return ExitInvalid
		}
		return ExitOK
	}
	opt := lang.TextOptions{Color: useColor(s.Stderr, env, a.noColor), Width: termWidth(s.Stderr)}
	if err := lang.WriteText(s.Stderr, all, sources, opt); err != nil {
		return ExitInvalid
	}
	resources, invalid := 0, 0
	for _, r := range results {
		n := len(r.cfg.Resources)
		resources += n
		status := "ok"
		if r.diags.HasErrors() {
			status = "invalid"
			invalid++
		}
		fmt.Fprintf(s.Stdout, "%-8s %s (%d %s)\n", status, r.name, n, plural(n, "resource"))
	}
	if all.HasErrors() {
		fmt.Fprintf(s.Stdout, "\n%d of %d %s invalid, %d %s found.\n", invalid+len(fatal), len(results)+len(fatal), plural(len(results)+len(fatal), "configuration"), len(all.Errs()), plural(len(all.Errs()), "error"))
		return ExitInvalid
	}
	fmt.Fprintf(s.Stdout, "\nSuccess! %d %s, %d %s valid.\n", len(results), plural(len(results), "configuration"), resources, plural(resources, "resource"))
	return ExitOK
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
