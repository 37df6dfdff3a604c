package providerproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// A Dispatcher runs one call: op with its JSON arguments (empty when the
// call has none). Its result is sent back JSON-encoded; nil sends none.
type Dispatcher func(ctx context.Context, op string, args json.RawMessage) (any, error)

// Serve serves a provider on r and w (the program's standard input and
// output) until r ends, then waits for the calls in flight: open makes
// the provider's Dispatcher from the settings the first message carries.
// Each call runs in its own goroutine, with the caller's deadline, and is
// canceled when the caller says so.
func Serve(r io.Reader, w io.Writer, open func(ctx context.Context, settings json.RawMessage) (Dispatcher, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	var (
		wmu      sync.Mutex
		enc      = json.NewEncoder(w)
		cmu      sync.Mutex
		cancels  = map[uint64]context.CancelFunc{}
		wg       sync.WaitGroup
		dispatch Dispatcher
	)
	send := func(resp *response) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(resp)
	}
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("a message that is not a request: %w", err)
		}
		if req.Op == opCancel {
			cmu.Lock()
			if c := cancels[req.ID]; c != nil {
				c()
			}
			cmu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		if req.Deadline != nil {
			ctx, cancel = context.WithDeadline(context.Background(), *req.Deadline)
		}
		if req.Op == opOpen {
			var err error
			dispatch, err = open(ctx, req.Args)
			cancel()
			resp := &response{ID: req.ID}
			if err != nil {
				resp.Err = ToWire(err)
			}
			send(resp)
			continue
		}
		if dispatch == nil {
			cancel()
			send(&response{ID: req.ID, Err: &WireError{Message: "the provider is not open"}})
			continue
		}
		cmu.Lock()
		cancels[req.ID] = cancel
		cmu.Unlock()
		wg.Add(1)
		go func(dispatch Dispatcher) {
			defer wg.Done()
			result, err := dispatch(ctx, req.Op, req.Args)
			cmu.Lock()
			delete(cancels, req.ID)
			cmu.Unlock()
			cancel()
			resp := &response{ID: req.ID}
			if err != nil {
				resp.Err = ToWire(err)
			} else if result != nil {
				b, merr := json.Marshal(result)
				if merr != nil {
					resp.Err = ToWire(merr)
				}
				resp.Result = b
			}
			send(resp)
		}(dispatch)
	}
	wg.Wait()
	return sc.Err()
}

// ServeProvider is Serve for a provider whose settings decode into S:
// open makes the provider P from them, and dispatch runs each call on it.
func ServeProvider[S, P any](r io.Reader, w io.Writer, open func(context.Context, S) (P, error),
	dispatch func(ctx context.Context, p P, op string, args json.RawMessage) (any, error)) error {
	return Serve(r, w, func(ctx context.Context, settings json.RawMessage) (Dispatcher, error) {
		var s S
		if err := json.Unmarshal(settings, &s); err != nil {
			return nil, err
		}
		p, err := open(ctx, s)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, op string, args json.RawMessage) (any, error) {
			return dispatch(ctx, p, op, args)
		}, nil
	})
}
