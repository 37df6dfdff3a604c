package state

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Forget removes resources, or single instances written ADDR[i] (an SSH
// fleet's host that is gone for good), from s: dstack stops managing
// them and nothing is destroyed (`dstack state rm`). Every address is
// checked before anything is removed, so on an error s is as it was. An
// index that two instances share (a run's job and one it abandoned on a
// host that did not answer) is refused rather than guessed.
func (s *State) Forget(addrs ...string) error {
	type target struct {
		res *Resource
		in  *Instance // nil: the whole resource
	}
	var targets []target
	var errs []error
	for _, a := range addrs {
		r, in, err := s.findForget(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		targets = append(targets, target{r, in})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, t := range targets {
		if t.in == nil {
			s.Remove(t.res.Address)
			continue
		}
		t.res.Instances = slices.DeleteFunc(t.res.Instances, func(in *Instance) bool { return in == t.in })
	}
	return nil
}

// findForget finds what Forget removes for addr: a resource, or for
// ADDR[i] the resource and its instance i.
func (s *State) findForget(addr string) (*Resource, *Instance, error) {
	base, index, indexed := strings.Cut(addr, "[")
	r := s.Resource(base)
	if !indexed {
		if r == nil {
			return nil, nil, fmt.Errorf("no resource %s in the state", addr)
		}
		return r, nil, nil
	}
	idx, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
	if err != nil || idx < 0 || !strings.HasSuffix(index, "]") {
		return nil, nil, fmt.Errorf("%s: the index must be a number, as in %s[0]", addr, base)
	}
	if r == nil {
		return nil, nil, fmt.Errorf("no resource %s in the state", base)
	}
	var found *Instance
	for _, in := range r.Instances {
		if in.Index != idx {
			continue
		}
		if found != nil {
			return nil, nil, fmt.Errorf("%s names more than one instance (%s and %s); forget the whole resource, or wait until its host answers and apply removes the abandoned one",
				addr, found.ProviderID, in.ProviderID)
		}
		found = in
	}
	if found == nil {
		return nil, nil, fmt.Errorf("%s has no instance %d", base, idx)
	}
	return r, found, nil
}

// Move renames the resource at from to to, for a resource renamed in
// the configuration (`dstack state mv`), and points the dependencies on
// it at the new address. The kind (the part before the first dot) must
// stay the same; on an error s is as it was.
func (s *State) Move(from, to string) error {
	fk, _, _ := strings.Cut(from, ".")
	tk, _, _ := strings.Cut(to, ".")
	if fk != tk {
		return fmt.Errorf("cannot move %s to %s: the kind differs", from, to)
	}
	r := s.Resource(from)
	if r == nil {
		return fmt.Errorf("no resource %s in the state", from)
	}
	if from == to {
		return nil
	}
	if s.Resource(to) != nil {
		return fmt.Errorf("%s is already in the state", to)
	}
	s.Remove(from)
	r.Address = to
	for _, other := range s.Resources {
		if i := slices.Index(other.DependsOn, from); i >= 0 {
			other.DependsOn[i] = to
			slices.Sort(other.DependsOn)
		}
	}
	s.Put(r)
	return nil
}
