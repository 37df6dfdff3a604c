package planner

import (
	"fmt"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Fencing. State's compare-and-swap protects the state, not the cloud: a
// holder that stalled (a paused CI runner, a long GC, a laptop lid) while
// its lease ran out, or whose lock was broken with force-unlock, would go
// on making machines that the next holder never learns of. So apply
// starts a provider call that makes, deletes or stops something only
//
//   - while its lease is its own by its own clock (Fence.Valid), and
//   - once the intent of a create, with its token and the time until
//     which its writer may still start it, is durably recorded, and
//   - while every record written so far was written (a failed write
//     stops the apply: nothing new starts).
//
// A call already in flight finishes; its object carries the token of a
// recorded intent. The next holder's refresh asks the providers about
// every recorded intent: what exists is adopted; an intent whose object
// does not exist is kept as pending while its writer may still make it
// (see pendingUntil) and dropped after that.

// Fence is what apply needs of the lease on the state: whether the
// holder may still start work, and until when, by its own clock, it may.
type Fence interface {
	Valid() error
	Until() time.Time
}

// Holder names the process that applies, for the intents it records: the
// next holder keeps an intent pending while that process may still run
// (see RefreshOptions.WriterGone).
type Holder struct {
	// Lock is the ID of the lock held.
	Lock string
	// Host and PID name the process.
	Host string
	PID  int
}

// intent is what a create's record says of who may still be making it.
type intent struct {
	Lock string `json:"lock"`
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Until is when its writer's lease ends by the writer's clock: it
	// starts no call for the intent after that.
	Until time.Time `json:"until"`
}

// DefaultCallGrace is how long after an intent's writer lost its lease a
// provider call it had in flight may still make the object: until then
// the intent is kept pending, unless the writer is known to be gone.
const DefaultCallGrace = 10 * time.Minute

// FencedError says apply stopped starting work because it could no
// longer be sure it held the state: its lease lapsed or was lost, or a
// record of its progress could not be written.
type FencedError struct {
	Cause error
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("this apply stopped starting work: %v. It started nothing after that; the calls already in flight "+
		"finished, and whatever they made carries the token of an intent recorded in the state. The next plan or apply, "+
		"whoever runs it, adopts what exists and drops what was never made: no manual step is needed", e.Cause)
}

func (e *FencedError) Unwrap() error { return e.Cause }

// pendingUntil says whether a recorded intent whose object the provider
// does not know may still be made by its writer, and until when: not when
// this very holder wrote it, not when its writer is known to be gone, and
// not past the writer's lease plus the grace for calls in flight.
func pendingUntil(in *state.Instance, opts RefreshOptions, now time.Time) (time.Time, *intent, bool) {
	it, ok := decodeAttr[intent](in, attrIntent)
	if !ok || it.Lock == "" || it.Lock == opts.Holder {
		return time.Time{}, nil, false
	}
	if opts.WriterGone != nil && it.PID > 0 && opts.WriterGone(it.Host, it.PID) {
		return time.Time{}, &it, false
	}
	until := it.Until.Add(opts.CallGrace)
	return until, &it, now.Before(until)
}

func (it *intent) describe() string {
	if it == nil {
		return ""
	}
	if it.PID > 0 {
		return fmt.Sprintf("lock %s, process %d on %s", it.Lock, it.PID, it.Host)
	}
	return "lock " + it.Lock
}
