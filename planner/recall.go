package planner

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
)

// Recall hands every provider that reaches its objects through what the
// state records of them (providers.Recaller: SSH fleets) the objects st
// holds for it. Refresh and Apply call it; so should anything else that
// uses a provider's objects from state (logs, attach, stop).
func Recall(st *state.State, set providers.Set) {
	if st == nil {
		return
	}
	recallers := map[string]providers.Recaller{} // by backend; nil: not one
	recaller := func(b string) providers.Recaller {
		rc, seen := recallers[b]
		if !seen {
			if p, err := set.For(b); err == nil {
				rc, _ = p.(providers.Recaller)
			}
			recallers[b] = rc
		}
		return rc
	}
	var ids map[string]string // instance token → provider ID, for jobs' hosts
	byBackend := map[string][]providers.Object{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			if in.Provider == "" || in.Token == "" || recaller(in.Provider) == nil {
				continue
			}
			if ids == nil {
				ids = map[string]string{}
				for _, r := range st.Resources {
					for _, in := range r.Instances {
						if in.Token != "" {
							ids[in.Token] = in.ProviderID
						}
					}
				}
			}
			byBackend[in.Provider] = append(byBackend[in.Provider], RecordedObject(r.Address, in, ids))
		}
	}
	for _, b := range slices.Sorted(maps.Keys(byBackend)) {
		recaller(b).Recall(byBackend[b])
	}
}

// RecordedObject is an instance of state as its provider described it:
// string attributes, the offer, and a job's host as the host's provider
// ID (ids maps instance tokens to provider IDs).
func RecordedObject(address string, in *state.Instance, ids map[string]string) providers.Object {
	o := providers.Object{Kind: instanceKind(in), ID: in.ProviderID, Token: in.Token,
		Address: fmt.Sprintf("%s[%d]", address, in.Index), Status: in.Status, Attributes: map[string]string{}}
	for k, v := range in.Attributes {
		if s, ok := v.(string); ok {
			o.Attributes[k] = s
		}
	}
	if off, ok := decodeAttr[offers.Offer](in, AttrOffer); ok {
		o.Offer = &off
	}
	if h := hostOf(in); h != "" {
		o.Host = ids[h]
	}
	return o
}
