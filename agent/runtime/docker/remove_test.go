package docker_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// TestConcurrentRemove removes one running container from two callers at
// once, as a delete from apply and the agent's own clean-up can: the
// Engine refuses the second with "removal of container ... is already in
// progress", and both must still report the container gone.
func TestConcurrentRemove(t *testing.T) {
	r, img := newRuntime(t)
	for i := range 5 {
		spec := newJob(t, img, "trap '' TERM; sleep 60")
		ctx := ctxFor(t, 2*time.Minute)
		h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "job.log"), nil)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for k := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[k] = h.Remove(ctx) }()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("round %d, remover %d: %v", i, k, err)
			}
		}
		list, err := dockertest.Client(t).ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJobID+"="+spec.ID))})
		if err != nil || len(list) != 0 {
			t.Fatalf("round %d: containers left: %d (%v)", i, len(list), err)
		}
	}
}
