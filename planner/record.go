package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/state"
)

// record is one journal entry: a change to the state that apply made
// durable before going on.
type record struct {
	Op         string          `json:"op"` // one of the journal* constants
	Lineage    string          `json:"lineage,omitempty"`
	Serial     *uint64         `json:"serial,omitempty"`
	Address    string          `json:"address,omitempty"`
	Token      string          `json:"token,omitempty"`
	Instance   *state.Instance `json:"instance,omitempty"`
	ConfigHash string          `json:"config_hash,omitempty"`
	DependsOn  []string        `json:"depends_on,omitempty"`
	Spec       any             `json:"spec,omitempty"`
	Sensitive  *Sensitive      `json:"sensitive,omitempty"`
	At         string          `json:"at,omitempty"` // when a job was abandoned, or its machine released
}

// Journal ops (record.Op).
const (
	journalBegin           = "begin"            // the state the journal applies to: lineage and serial
	journalPutInstance     = "put-instance"     // record an instance (an intent, or what a provider made)
	journalRemoveInstance  = "remove-instance"  // forget an instance that is gone
	journalAbandonInstance = "abandon-instance" // mark a job left on a host that did not answer
	journalReleaseInstance = "release-instance" // mark a finished job whose own machine was released
	journalPutResource     = "put-resource"     // record a resource's configuration
	journalForget          = "forget"           // drop a resource
)

// applyRecord changes st as r says. Every record is idempotent, so a
// journal replayed twice gives the same state.
func applyRecord(st *state.State, r *record) {
	res := st.Resource(r.Address)
	switch r.Op {
	case journalPutInstance:
		if res == nil {
			res = &state.Resource{Address: r.Address}
			st.Put(res)
		}
		for i, in := range res.Instances {
			if in.Token == r.Instance.Token {
				res.Instances[i] = r.Instance
				return
			}
		}
		res.Instances = append(res.Instances, r.Instance)
	case journalRemoveInstance:
		if res == nil {
			return
		}
		for i, in := range res.Instances {
			if in.Token == r.Token {
				res.Instances = append(res.Instances[:i:i], res.Instances[i+1:]...)
				return
			}
		}
	case journalAbandonInstance, journalReleaseInstance:
		if res == nil {
			return
		}
		key := AttrAbandonedAt
		if r.Op == journalReleaseInstance {
			key = AttrReleasedAt
		}
		for _, in := range res.Instances {
			if in.Token == r.Token {
				if in.Attributes == nil {
					in.Attributes = map[string]any{}
				}
				in.Attributes[key] = r.At
				return
			}
		}
	case journalPutResource:
		if res == nil {
			res = &state.Resource{Address: r.Address}
			st.Put(res)
		}
		res.ConfigHash, res.DependsOn = r.ConfigHash, r.DependsOn
		if res.Attributes == nil {
			res.Attributes = map[string]any{}
		}
		res.Attributes[AttrSpec] = r.Spec
		if r.Sensitive != nil {
			res.Attributes[attrSensitive] = r.Sensitive
		} else {
			delete(res.Attributes, attrSensitive)
		}
	case journalForget:
		st.Remove(r.Address)
	}
}

// Store is where apply keeps the state while it works: the backend, the
// workspace and the lock held.
type Store struct {
	Backend   state.Backend
	Workspace string
	LockID    string
	// Version is that of the stored state the work started from (empty
	// when none was stored).
	Version state.Version
}

// Recovery says what Recover did.
type Recovery struct {
	// Replayed: a journal was folded into the state.
	Replayed bool
	// SetAside is where a journal that could not be replayed was moved
	// (beside the state), and Problem why; the state went on from the
	// last one written, plus the objects the journal named (see salvage).
	SetAside, Problem string
}

// Recover folds a journal that an interrupted apply left behind into the
// state and writes it. It returns the state as stored afterwards (nil
// when there is none). A journal that cannot be replayed (a damaged
// record, no begin record, another lineage) never jams later commands:
// it is set aside, and every object it recorded is added to the state as
// an intent, for refresh to adopt what exists and drop the rest.
func Recover(ctx context.Context, s *Store, toolVersion string) (*state.Snapshot, Recovery, error) {
	snap, err := s.Backend.Read(ctx, s.Workspace)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, Recovery{}, err
	}
	j, ok := s.Backend.(state.Journal)
	if !ok {
		return snap, Recovery{}, nil
	}
	raw, err := j.ReadJournal(ctx, s.Workspace)
	if err != nil || len(raw) == 0 {
		return snap, Recovery{}, err
	}
	recs, problem := parseJournal(raw, snap)
	var st *state.State
	var prev state.Version
	if snap != nil {
		st, prev = snap.State, snap.Version
	}
	rec := Recovery{Replayed: true}
	switch {
	case problem != "":
		where, err := j.SetAsideJournal(ctx, s.Workspace, s.LockID)
		if err != nil {
			return nil, Recovery{}, fmt.Errorf("the journal cannot be replayed (%s), and setting it aside failed: %w", problem, err)
		}
		rec = Recovery{SetAside: where, Problem: problem}
		if st == nil {
			st = state.New(toolVersion)
		}
		if !salvage(st, recs) {
			return snap, rec, nil
		}
	case snap != nil && st.Serial != *recs[0].Serial:
		// The apply wrote its state but died before clearing the
		// journal: there is nothing left to fold in.
		return snap, rec, j.ClearJournal(ctx, s.Workspace, s.LockID)
	default:
		if st == nil {
			st = state.New(toolVersion)
			st.Lineage = recs[0].Lineage
		}
		for _, r := range recs[1:] {
			applyRecord(st, r)
		}
	}
	st.Serial++
	st.ToolVersion = toolVersion
	v, err := s.Backend.Write(ctx, s.Workspace, st, prev, s.LockID)
	if err != nil {
		return nil, rec, fmt.Errorf("writing the recovered state: %w", err)
	}
	if rec.SetAside == "" {
		if err := j.ClearJournal(ctx, s.Workspace, s.LockID); err != nil {
			return nil, rec, err
		}
	}
	return &state.Snapshot{State: st, Version: v}, rec, nil
}

// parseJournal reads a journal's records, and says why it cannot be
// replayed onto snap ("" when it can). The records it could read are
// returned either way.
func parseJournal(raw [][]byte, snap *state.Snapshot) ([]*record, string) {
	recs := make([]*record, 0, len(raw))
	problem := ""
	for i, b := range raw {
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			if problem == "" {
				problem = fmt.Sprintf("record %d is damaged: %v", i+1, err)
			}
			continue
		}
		recs = append(recs, &r)
	}
	switch {
	case problem != "":
	case recs[0].Op != journalBegin || recs[0].Serial == nil:
		problem = "it does not start with a begin record"
	case snap != nil && snap.State.Lineage != recs[0].Lineage:
		problem = fmt.Sprintf("it belongs to state lineage %s, the stored state is %s", recs[0].Lineage, snap.State.Lineage)
	}
	return recs, problem
}

// salvage adds to st, as intents, the objects that journal records made
// and st does not know (by token), so that refresh adopts those that
// exist; it reports whether it added any. Nothing else of the records is
// trusted.
func salvage(st *state.State, recs []*record) bool {
	known := map[string]bool{}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			known[in.Token] = true
		}
	}
	added := false
	for _, r := range recs {
		if r.Op != journalPutInstance || r.Instance == nil || r.Instance.Token == "" || known[r.Instance.Token] {
			continue
		}
		if _, err := lang.ParseAddress(r.Address); err != nil {
			continue
		}
		known[r.Instance.Token] = true
		in := *r.Instance
		in.ProviderID = "" // found again by token, or dropped
		delete(in.Attributes, attrIntent)
		res := st.Resource(r.Address)
		if res == nil {
			res = &state.Resource{Address: r.Address}
			st.Put(res)
		}
		res.Instances = append(res.Instances, &in)
		added = true
	}
	return added
}

// recorder makes state changes durable, many at a time: callers wait
// until their records are on the backend (group commit).
type recorder struct {
	store   *Store
	journal state.Journal // nil: the whole state is written instead
	st      *state.State
	reqs    chan recReq
	done    chan struct{}
	toolVer string
	err     error
}

type recReq struct {
	recs  []*record
	reply chan error
}

func newRecorder(ctx context.Context, s *Store, st *state.State, toolVersion string) (*recorder, error) {
	r := &recorder{store: s, st: st, reqs: make(chan recReq, 64), done: make(chan struct{}), toolVer: toolVersion}
	if j, ok := s.Backend.(state.Journal); ok {
		r.journal = j
		serial := st.Serial
		b, _ := json.Marshal(&record{Op: journalBegin, Lineage: st.Lineage, Serial: &serial})
		if err := j.AppendJournal(ctx, s.Workspace, s.LockID, [][]byte{b}); err != nil {
			return nil, fmt.Errorf("starting the journal: %w", err)
		}
	}
	go r.loop(context.WithoutCancel(ctx))
	return r, nil
}

// write records recs and returns once they are durable.
func (r *recorder) write(recs ...*record) error {
	reply := make(chan error, 1)
	r.reqs <- recReq{recs, reply}
	return <-reply
}

func (r *recorder) loop(ctx context.Context) {
	defer close(r.done)
	for req := range r.reqs {
		batch := []recReq{req}
	drain:
		for {
			select {
			case more, ok := <-r.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		err := r.commit(ctx, batch)
		for _, b := range batch {
			b.reply <- err
		}
	}
}

func (r *recorder) commit(ctx context.Context, batch []recReq) error {
	if r.err != nil {
		return r.err
	}
	var lines [][]byte
	for _, b := range batch {
		for _, rec := range b.recs {
			applyRecord(r.st, rec)
			if r.journal != nil {
				line, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				lines = append(lines, line)
			}
		}
	}
	var err error
	if r.journal != nil {
		err = r.journal.AppendJournal(ctx, r.store.Workspace, r.store.LockID, lines)
	} else {
		err = r.writeState(ctx)
	}
	if err != nil {
		r.err = fmt.Errorf("recording progress: %w", err)
	}
	return r.err
}

func (r *recorder) writeState(ctx context.Context) error {
	r.st.Serial++
	r.st.ToolVersion = r.toolVer
	v, err := r.store.Backend.Write(ctx, r.store.Workspace, r.st, r.store.Version, r.store.LockID)
	if err != nil {
		r.st.Serial--
		return err
	}
	r.store.Version = v
	return nil
}

// close stops the recorder and writes the final state: with a journal,
// one write of the whole state, then the journal is cleared.
func (r *recorder) close(ctx context.Context) error {
	close(r.reqs)
	<-r.done
	if r.err != nil {
		return r.err
	}
	if r.journal == nil {
		return nil
	}
	if err := r.writeState(ctx); err != nil {
		return fmt.Errorf("writing state: %w (the journal keeps every change; the next command recovers it)", err)
	}
	return r.journal.ClearJournal(ctx, r.store.Workspace, r.store.LockID)
}
