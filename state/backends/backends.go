// Package backends names the state backends a configuration can choose,
// and builds one from its settings. It is the only package that imports
// them all; commands get a backend from here.
package backends

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/azurerm"
	"github.com/dstackai/dstack-go/state/gcs"
	"github.com/dstackai/dstack-go/state/httpstate"
	"github.com/dstackai/dstack-go/state/local"
	"github.com/dstackai/dstack-go/state/pg"
	"github.com/dstackai/dstack-go/state/s3"
)

type factory func(cfg map[string]string) (state.Backend, error)

// known lists the backends by the name used in `backend "NAME"`.
var known = map[string]factory{
	"local":   func(cfg map[string]string) (state.Backend, error) { return local.New(cfg) },
	"azurerm": func(cfg map[string]string) (state.Backend, error) { return azurerm.New(cfg) },
	"gcs":     func(cfg map[string]string) (state.Backend, error) { return gcs.New(cfg) },
	"http":    func(cfg map[string]string) (state.Backend, error) { return httpstate.New(cfg) },
	"pg":      func(cfg map[string]string) (state.Backend, error) { return pg.New(cfg) },
	"s3":      func(cfg map[string]string) (state.Backend, error) { return s3.New(cfg) },
}

// Names returns the backend names, sorted.
func Names() []string {
	out := make([]string, 0, len(known))
	for n := range known {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// New builds the named backend from its settings.
func New(name string, cfg map[string]string) (state.Backend, error) {
	f, ok := known[name]
	if !ok {
		return nil, fmt.Errorf("unknown backend %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	b, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring the %s backend: %w", name, err)
	}
	return b, nil
}
