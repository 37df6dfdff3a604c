package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// heldElsewhere is a backend whose lock someone else always holds.
type heldElsewhere struct {
	state.Backend
	tries int
}

func (b *heldElsewhere) Lock(context.Context, string, state.LockInfo, time.Duration) (*state.LockInfo, error) {
	b.tries++
	return nil, &state.LockedError{Holder: state.LockInfo{ID: "other", Who: "ci-job-7"}}
}

// TestHoldWaitsTheWholeTimeout: -lock-timeout=T waits T, trying one last
// time at the deadline (backoff's elapsed-time limit gave up early: 7.8 s
// of 10 s), then names the holder.
func TestHoldWaitsTheWholeTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, 1500 * time.Millisecond} {
		b := &heldElsewhere{}
		start := time.Now()
		_, err := state.Hold(context.Background(), b, "default", state.LockInfo{Who: "me"}, state.HoldOptions{Timeout: timeout})
		waited := time.Since(start)
		var locked *state.LockedError
		if !errors.As(err, &locked) || locked.Holder.Who != "ci-job-7" {
			t.Fatalf("timeout %s: got %v, want the holder's *LockedError", timeout, err)
		}
		if waited < timeout || waited > timeout+time.Second {
			t.Fatalf("timeout %s: waited %s, want the timeout itself", timeout, waited)
		}
		if timeout == 0 && b.tries != 1 {
			t.Fatalf("no timeout: %d tries, want 1", b.tries)
		}
	}
}
