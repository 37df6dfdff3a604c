package planner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// RefreshOptions tune Refresh.
type RefreshOptions struct {
	// Batch is how many tokens one Describe call asks about (500 when
	// zero); Concurrency how many calls run at once per provider (4).
	Batch, Concurrency int
	// Holder is the ID of the lock this refresh runs under: intents it
	// recorded itself are never pending.
	Holder string
	// WriterGone says whether the process that recorded an intent is
	// known to have ended (one on this machine that no longer runs); its
	// unmade intents are then dropped at once. Nil: never known.
	WriterGone func(host string, pid int) bool
	// CallGrace is how long past its writer's lease an intent is kept
	// pending (DefaultCallGrace when zero).
	CallGrace time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Refresh asks the providers about every object in st, updates st in
// place (adopting objects whose creation an interrupted apply recorded,
// dropping ones that are gone) and returns what changed outside dstack.
func Refresh(ctx context.Context, st *state.State, set providers.Set, opts RefreshOptions) ([]Drift, error) {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.CallGrace <= 0 {
		opts.CallGrace = DefaultCallGrace
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	type ref struct {
		res *state.Resource
		in  *state.Instance
	}
	Recall(st, set)
	byBackend := map[string][]ref{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			if in.Token == "" || in.Attributes[AttrExternal] == true || Released(in) {
				continue // nothing to ask: a released job's machine is gone, its record stays as it was
			}
			byBackend[in.Provider] = append(byBackend[in.Provider], ref{r, in})
		}
	}
	backends := slices.Sorted(maps.Keys(byBackend))
	found := make(map[string]providers.Object)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range backends {
		prov, err := set.For(b)
		if err != nil {
			return nil, fmt.Errorf("refreshing %s objects: %w", b, err)
		}
		refs := byBackend[b]
		sem := make(chan struct{}, opts.Concurrency)
		for i := 0; i < len(refs); i += opts.Batch {
			batch := refs[i:min(i+opts.Batch, len(refs))]
			tokens := make([]string, len(batch))
			for j, r := range batch {
				tokens[j] = r.in.Token
			}
			g.Go(func() error {
				select {
				case sem <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				defer func() { <-sem }()
				objs, err := describe(gctx, prov, tokens)
				if err != nil {
					return fmt.Errorf("refreshing %s objects: %w", b, err)
				}
				mu.Lock()
				for t, o := range objs {
					found[t] = o
				}
				mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var drift []Drift
	for _, r := range st.Resources {
		kind := lang.Kind("")
		if a, err := lang.ParseAddress(r.Address); err == nil {
			kind = a.Kind
		}
		kept := r.Instances[:0]
		for _, in := range r.Instances {
			if in.Token == "" || in.Attributes[AttrExternal] == true || Released(in) {
				kept = append(kept, in)
				continue
			}
			o, ok := found[in.Token]
			d := Drift{Address: r.Address, Index: in.Index, ProviderID: in.ProviderID}
			switch {
			case !ok && in.ProviderID == "":
				until, it, pending := pendingUntil(in, opts, now)
				if pending {
					// Its writer lost its lock but may still be making
					// it: kept, so that nothing takes its place and the
					// object, if it appears, is adopted.
					in.Attributes[attrPending] = until.UTC().Format(time.RFC3339)
					d.Message = fmt.Sprintf("%s[%d] may still be created by an apply that lost its state lock (%s); "+
						"kept as pending until %s or until that apply ends, then adopted if it exists or dropped",
						r.Address, in.Index, it.describe(), until.Local().Format(time.Kitchen))
					drift = append(drift, d)
					kept = append(kept, in)
					continue
				}
				if it != nil || in.Attributes[attrPending] != nil {
					d.Message = fmt.Sprintf("%s[%d] was never created by the apply that recorded it (%s), which has ended; dropping its record",
						r.Address, in.Index, nonEmpty(it.describe(), "an apply that lost its lock"))
					drift = append(drift, d)
				}
				// The intent of a create an interrupted apply never got
				// to: nothing exists, nothing changed outside dstack.
				continue
			case Abandoned(in) && (!ok || o.Status == providers.StatusTerminated):
				// A job its run left on a host that did not answer, gone
				// from there since: nothing is left to remove.
				d.Message = fmt.Sprintf("job %s of %s, left on a host that did not answer, is gone", nonEmpty(in.ProviderID, in.Token), r.Address)
				drift = append(drift, d)
				continue
			case !ok || o.Status == providers.StatusTerminated || ((o.Status == providers.StatusFailed || o.Status == providers.StatusStopped) && kind != lang.KindTask && !Abandoned(in)):
				if kind == lang.KindTask && providers.Ended(in.Status) {
					kept = append(kept, in) // a finished job's record stays
					continue
				}
				what := "was deleted outside dstack"
				if ok {
					what = "was terminated outside dstack"
					switch o.Status {
					case providers.StatusFailed:
						what = "failed"
					case providers.StatusStopped:
						what = "was stopped"
					}
					if o.Reason != "" {
						what += " (" + o.Reason + ")"
					}
				}
				d.Message = fmt.Sprintf("%s %s of %s %s", describeKind(instanceKind(in)), nonEmpty(in.ProviderID, in.Token), r.Address, what)
				drift = append(drift, d)
				if kind == lang.KindTask {
					// The task ended there: its job stays as a failed
					// record, and its retry policy decides whether it
					// runs again.
					in.Status = providers.StatusFailed
					if in.Attributes == nil {
						in.Attributes = map[string]any{}
					}
					in.Attributes[AttrEndedOutside] = what
					if _, ok := in.Attributes[providers.AttrFinishedAt]; !ok {
						// When the retry policy's duration starts.
						in.Attributes[providers.AttrFinishedAt] = now.UTC().Format(time.RFC3339)
					}
					kept = append(kept, in)
				}
				continue
			}
			if in.ProviderID == "" {
				d.ProviderID = o.ID
				d.Message = fmt.Sprintf("%s[%d] was created by an interrupted apply as %s; adopting it", r.Address, in.Index, o.ID)
				drift = append(drift, d)
				delete(in.Attributes, attrIntent)
				delete(in.Attributes, attrPending)
			}
			in.ProviderID = o.ID
			if o.Status == providers.StatusUnknown && kind == lang.KindFleet {
				// A host that does not answer (an SSH fleet's): reported,
				// kept, and left alone until it does.
				d.Message = fmt.Sprintf("%s %s of %s %s", describeKind(instanceKind(in)), nonEmpty(in.ProviderID, in.Token), r.Address, nonEmpty(o.Reason, "does not answer"))
				drift = append(drift, d)
			}
			if in.Status != o.Status {
				in.Status = o.Status
			}
			if len(o.Attributes) > 0 {
				if in.Attributes == nil {
					in.Attributes = map[string]any{}
				}
				for k, v := range o.Attributes {
					in.Attributes[k] = v
				}
			}
			if kind == lang.KindTask && providers.Ended(in.Status) && attrString(in, providers.AttrFinishedAt) == "" {
				// A provider that does not say when a job ended: it ended
				// by the first refresh that saw it ended, which is when a
				// retry policy's duration starts.
				if in.Attributes == nil {
					in.Attributes = map[string]any{}
				}
				in.Attributes[providers.AttrFinishedAt] = now.UTC().Format(time.RFC3339)
			}
			kept = append(kept, in)
		}
		r.Instances = kept
	}
	sort.SliceStable(drift, func(i, j int) bool {
		if drift[i].Address != drift[j].Address {
			return drift[i].Address < drift[j].Address
		}
		return drift[i].Index < drift[j].Index
	})
	return drift, nil
}

// describe calls Describe, backing off while the provider rate-limits.
func describe(ctx context.Context, p providers.Provider, tokens []string) (map[string]providers.Object, error) {
	var objs map[string]providers.Object
	err := withRetry(ctx, func() error {
		var err error
		objs, err = p.Describe(ctx, tokens)
		return err
	})
	return objs, err
}

func describeKind(k providers.ObjectKind) string {
	if k == "" {
		return "object"
	}
	return string(k)
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
