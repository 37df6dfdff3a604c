// Command dstack-backend-gcs serves dstack's gcs state backend to dstack
// over its standard input and output (see state/backendproc). dstack
// starts it when a command needs that backend, so that the backend's SDK
// is linked into this program only.
package main

import (
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backendproc"
	"github.com/dstackai/dstack-go/state/gcs"
)

func main() {
	backendproc.Main(func(cfg map[string]string) (state.Backend, error) { return gcs.New(cfg) })
}
