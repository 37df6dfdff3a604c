// Package parallel runs independent pieces of loading work on all CPUs.
package parallel

import (
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// ForEach calls fn(i) for i in [0, n) and returns when all calls have
// returned. fn reports through whatever it writes at index i, so results
// keep their input order.
//
// It starts one goroutine per CPU, each taking the next index until none
// is left, rather than one goroutine per item: decoding recurses deeply,
// and every fresh goroutine would pay again for growing its stack.
func ForEach(n int, fn func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
			return nil
		})
	}
	_ = g.Wait() // fn never returns an error
}
