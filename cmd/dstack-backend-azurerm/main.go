// Command dstack-backend-azurerm serves dstack's azurerm state backend to dstack
// over its standard input and output (see state/backendproc). dstack
// starts it when a command needs that backend, so that the backend's SDK
// is linked into this program only.
package main

import (
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/azurerm"
	"github.com/dstackai/dstack-go/state/backendproc"
)

func main() {
	backendproc.Main(func(cfg map[string]string) (state.Backend, error) { return azurerm.New(cfg) })
}
