package httpstate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/state"
)

// Backend is a client of a Terraform HTTP state server. It is safe for
// concurrent use.
type Backend struct {
	cfg    *config
	client *http.Client
	now    func() time.Time

	mu sync.Mutex
	// held are the locks this client took, by ID. Their info is the body
	// of UNLOCK, as Terraform sends it: some servers compare more than
	// the ID.
	held map[string]wireLock
}

var _ state.Backend = (*Backend)(nil)

// ErrSingleWorkspace is returned for a workspace other than "default"
// when the address has no {workspace} in it.
var ErrSingleWorkspace = errors.New(`the http backend's address has no {workspace} in it, so it holds only the "default" workspace`)

// New returns a client of the server configured by cfg. The keys are
// Terraform's: address (required), update_method, lock_address,
// lock_method, unlock_address, unlock_method, username, password,
// skip_cert_verification, retry_max, retry_wait_min, retry_wait_max,
// client_ca_certificate_pem, client_certificate_pem and
// client_private_key_pem; and dstack's: lock_ttl (the lease used when a
// caller gives none; two minutes) and workspaces_address (a URL
// answering GET with a JSON list of workspace names). See the package
// documentation for what each means.
func New(cfg map[string]string) (*Backend, error) {
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := newHTTPClient(c)
	if err != nil {
		return nil, err
	}
	return &Backend{cfg: c, client: client, now: time.Now, held: map[string]wireLock{}}, nil
}

// Close releases the client's idle connections.
func (b *Backend) Close() error {
	b.client.CloseIdleConnections()
	return nil
}

// Address returns the URL of a workspace's state.
func (b *Backend) Address(workspace string) (string, error) {
	return b.resolve(b.cfg.address, workspace)
}

func (b *Backend) resolve(tmpl, ws string) (string, error) {
	if err := validWorkspace(ws); err != nil {
		return "", err
	}
	if !b.cfg.templated {
		if ws != state.DefaultWorkspace {
			return "", fmt.Errorf("workspace %q: %w; put %s in address, lock_address and unlock_address (for example https://state.example.com/state/%s) to store one state per workspace",
				ws, ErrSingleWorkspace, Placeholder, Placeholder)
		}
		return tmpl, nil
	}
	return strings.ReplaceAll(tmpl, Placeholder, url.PathEscape(ws)), nil
}

// wireLock is Terraform's lock info as it travels in LOCK and UNLOCK
// bodies and in 423 and 409 answers, with Expires added: the end of the
// lease. Decoding matches keys without regard to case, so servers that
// write "id" or "expires" are read as well.
type wireLock struct {
	ID        string    `json:"ID"`
	Operation string    `json:"Operation"`
	Info      string    `json:"Info"`
	Who       string    `json:"Who"`
	Version   string    `json:"Version"`
	Created   time.Time `json:"Created"`
	Path      string    `json:"Path"`
	Expires   time.Time `json:"Expires,omitzero"`
}

func toWire(l state.LockInfo) wireLock {
	return wireLock{ID: l.ID, Operation: l.Operation, Who: l.Who, Version: l.Version, Created: l.Created, Path: l.Path, Expires: l.Expires}
}

func (w wireLock) info() state.LockInfo {
	return state.LockInfo{ID: w.ID, Operation: w.Operation, Who: w.Who, Version: w.Version, Created: w.Created, Path: w.Path, Expires: w.Expires}
}

func (w wireLock) json() []byte {
	data, err := json.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("httpstate: encoding lock info: %v", err))
	}
	return data
}

// decodeLock reads lock info from an answer's body; nil when there is
// none or it names no ID.
func decodeLock(body []byte) *wireLock {
	var w wireLock
	if err := json.Unmarshal(body, &w); err != nil || w.ID == "" {
		return nil
	}
	return &w
}

// holderOf is the holder named by a 423 or 409 answer; a server that
// does not say still gets an error that says the state is locked.
func holderOf(body []byte) state.LockInfo {
	if w := decodeLock(body); w != nil {
		return w.info()
	}
	return state.LockInfo{Who: "someone (the server did not say who)"}
}

func isLocked(status int) bool {
	return status == http.StatusLocked || status == http.StatusConflict
}

// version is the Version of stored bytes: the ETag the server sent with
// them, or the SHA-256 of the bytes when it sent none (or a weak one,
// which cannot be used in If-Match).
func version(h http.Header, body []byte) state.Version {
	if v := etag(h); v != "" {
		return v
	}
	return hashVersion(body)
}

func etag(h http.Header) state.Version {
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return state.Version(et)
	}
	return ""
}

const hashPrefix = "sha256:"

func hashVersion(body []byte) state.Version {
	sum := sha256.Sum256(body)
	return state.Version(hashPrefix + hex.EncodeToString(sum[:]))
}

// fetch GETs a state's bytes and Version. A missing state is
// state.ErrNotFound: 404, 204, or, as Terraform reads it, a 200 with an
// empty body, unless the server sent an ETag with it, which says an empty
// object is stored (so it is read as a corrupt state, not as none).
func (b *Backend) fetch(ctx context.Context, addr string) ([]byte, state.Version, error) {
	rq := request{op: "reading state", method: http.MethodGet, url: addr}
	r, err := b.do(ctx, rq)
	if err != nil {
		return nil, "", err
	}
	switch {
	case r.status == http.StatusNotFound || r.status == http.StatusNoContent:
		return nil, "", state.ErrNotFound
	case r.status != http.StatusOK:
		return nil, "", statusError(rq, r)
	case len(r.body) == 0 && etag(r.header) == "":
		return nil, "", state.ErrNotFound
	}
	if err := checkMD5(r); err != nil {
		return nil, "", fmt.Errorf("reading state from %s: %w", redact(addr), err)
	}
	return r.body, version(r.header, r.body), nil
}

// Read implements state.Backend.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	addr, err := b.resolve(b.cfg.address, workspace)
	if err != nil {
		return nil, err
	}
	data, v, err := b.fetch(ctx, addr)
	if err != nil {
		return nil, err
	}
	s, err := state.Decode(data, redact(addr))
	if err != nil {
		return nil, state.WithVersion(err, v)
	}
	return &state.Snapshot{State: s, Version: v}, nil
}

// Write implements state.Backend. It checks the stored Version with a
// GET, then writes with If-Match (If-None-Match: * for a first write)
// and, when locked, the lock ID in the query as Terraform does; see the
// package documentation for what that guarantees with which servers.
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	addr, err := b.resolve(b.cfg.address, workspace)
	if err != nil {
		return "", err
	}
	data, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	_, actual, err := b.fetch(ctx, addr)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return "", err
	}
	if actual != prev {
		return "", &state.ConflictError{Workspace: workspace, Expected: prev, Actual: actual}
	}
	// A server that sent an ETag with the state it has, or had no state,
	// may send one with the new state too; one that sent none is read by
	// content hash.
	serverTags := actual == "" || !strings.HasPrefix(string(actual), hashPrefix)

	target := addr
	if lockID != "" {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("writing state: %w", err)
		}
		q := u.Query()
		q.Set("ID", lockID)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-MD5", contentMD5(data))
	switch {
	case prev == "":
		h.Set("If-None-Match", "*")
	case !strings.HasPrefix(string(prev), hashPrefix):
		h.Set("If-Match", string(prev))
	}
	rq := request{op: "writing state", method: b.cfg.updateMethod, url: target, body: data, header: h}
	r, err := b.do(ctx, rq)
	if err != nil {
		return "", err
	}
	switch {
	case r.ok():
		if v := etag(r.header); v != "" {
			return v, nil
		}
		if !serverTags {
			return hashVersion(data), nil
		}
		return b.versionAfterWrite(ctx, addr, data)
	case r.status == http.StatusPreconditionFailed:
		stored, now, err := b.fetch(ctx, addr)
		if err == nil && r.ambiguous && bytes.Equal(stored, data) {
			// An attempt that failed on the way back was carried out;
			// this one found its own write.
			return now, nil
		}
		return "", &state.ConflictError{Workspace: workspace, Expected: prev, Actual: now}
	case isLocked(r.status):
		holder := holderOf(r.body)
		if lockID != "" {
			return "", &state.LockLostError{ID: lockID, Holder: &holder}
		}
		return "", &state.LockedError{Holder: holder}
	default:
		return "", statusError(rq, r)
	}
}

// versionAfterWrite learns the Version of what was just written from a
// server that sends ETags with GET but not with the write's answer. If
// the bytes read back are not the ones written (someone wrote since),
// it returns their hash, which matches nothing the server will send, so
// the next write conflicts and the caller reads again.
func (b *Backend) versionAfterWrite(ctx context.Context, addr string, data []byte) (state.Version, error) {
	stored, v, err := b.fetch(ctx, addr)
	if err == nil && bytes.Equal(stored, data) {
		return v, nil
	}
	return hashVersion(data), nil
}

func (b *Backend) remember(w wireLock) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held[w.ID] = w
}

func (b *Backend) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.held, id)
}

// lockBody is what this client sent when it took lock id, or the ID
// alone for a lock it did not take.
func (b *Backend) lockBody(id string) wireLock {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w, ok := b.held[id]; ok {
		return w
	}
	return wireLock{ID: id}
}

func (b *Backend) ttl(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return b.cfg.lockTTL
	}
	return ttl
}

// Lock implements state.Backend. The lease travels as the body's
// Created and Expires; a server that reads them returns the lock as it
// stored it (times by its own clock), which is what Lock returns.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	lockAddr, err := b.resolve(b.cfg.lockAddress, workspace)
	if err != nil {
		return nil, err
	}
	l := state.PrepareLock(info, b.now(), b.ttl(ttl))
	if l.Path == "" {
		addr, _ := b.resolve(b.cfg.address, workspace)
		l.Path = redact(addr)
	}
	sent := toWire(l)
	rq := request{op: "locking state", method: b.cfg.lockMethod, url: lockAddr, body: sent.json(), header: jsonHeader()}
	r, err := b.do(ctx, rq)
	if err != nil {
		return nil, err
	}
	switch {
	case r.ok():
		got := sent
		if stored := decodeLock(r.body); stored != nil && stored.ID == sent.ID {
			got = *stored
		}
		b.remember(got)
		li := got.info()
		return &li, nil
	case isLocked(r.status):
		if holder := decodeLock(r.body); holder != nil && holder.ID == sent.ID {
			// Ours already: an earlier attempt of this request took it.
			b.remember(*holder)
			li := holder.info()
			return &li, nil
		}
		return nil, &state.LockedError{Holder: holderOf(r.body)}
	default:
		return nil, statusError(rq, r)
	}
}

func jsonHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h
}

// Renew implements state.Backend: a lock request with the lock's ID and
// IntentHeader "renew". A server that does not know the header answers
// as to any lock request: 423 or 409 naming the holder while the lock is
// held (by us: it stays ours, as such a server has no expiry to extend),
// or 200 if the lock was free, which means ours was broken; the lock it
// just gave us is released again.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	lockAddr, err := b.resolve(b.cfg.lockAddress, workspace)
	if err != nil {
		return err
	}
	body := b.lockBody(id)
	// The lease's length is Expires − Created; a server keeps the
	// Created it stored when the lock was taken.
	now := b.now().UTC().Truncate(time.Millisecond)
	body.Created, body.Expires = now, now.Add(b.ttl(ttl))
	h := jsonHeader()
	h.Set(IntentHeader, "renew")
	rq := request{op: "renewing the state lock", method: b.cfg.lockMethod, url: lockAddr, body: body.json(), header: h}
	r, err := b.do(ctx, rq)
	if err != nil {
		return err
	}
	switch {
	case r.ok() && r.lease():
		if stored := decodeLock(r.body); stored != nil && stored.ID == id {
			b.remember(*stored)
		}
		return nil
	case r.ok():
		b.forget(id)
		lost := &state.LockLostError{ID: id}
		if err := b.release(ctx, workspace, body); err != nil {
			return fmt.Errorf("%w; the server gave the lock back to this renewal, and releasing it failed: %v; run: dstack force-unlock %s", lost, err, id)
		}
		return lost
	case isLocked(r.status):
		holder := decodeLock(r.body)
		if !r.lease() && (holder == nil || holder.ID == id) {
			// A plain server: the lock is still held, by us as far as
			// it says, and has no lease to extend.
			return nil
		}
		b.forget(id)
		if holder == nil {
			return &state.LockLostError{ID: id}
		}
		hi := holder.info()
		return &state.LockLostError{ID: id, Holder: &hi}
	default:
		return statusError(rq, r)
	}
}

// release unlocks a lock this client took by accident: a renewal or a
// probe answered by a server that knows no IntentHeader, which then
// takes the lock. On such a server it would stay held until someone
// force-unlocked it, so it gets time of its own if ctx is done.
func (b *Backend) release(ctx context.Context, workspace string, w wireLock) error {
	addr, err := b.resolve(b.cfg.unlockAddress, workspace)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rq := request{op: "unlocking state", method: b.cfg.unlockMethod, url: addr, body: w.json(), header: jsonHeader()}
	r, err := b.do(ctx, rq)
	if err != nil {
		return err
	}
	if !r.ok() {
		return statusError(rq, r)
	}
	return nil
}

// Unlock implements state.Backend. The body is the lock info this client
// sent when it took the lock (Terraform sends the same), or the ID alone.
// The server must check the ID, as Terraform's own force-unlock relies
// on; a server that releases whatever lock is held, whatever the body
// says, would release another holder's lock here after ours was broken.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	addr, err := b.resolve(b.cfg.unlockAddress, workspace)
	if err != nil {
		return err
	}
	rq := request{op: "unlocking state", method: b.cfg.unlockMethod, url: addr, body: b.lockBody(id).json(), header: jsonHeader()}
	r, err := b.do(ctx, rq)
	if err != nil {
		return err
	}
	switch {
	case r.ok():
		b.forget(id)
		return nil
	case isLocked(r.status):
		b.forget(id)
		lost := &state.LockLostError{ID: id}
		if holder := decodeLock(r.body); holder != nil {
			hi := holder.info()
			lost.Holder = &hi
		}
		return lost
	default:
		return statusError(rq, r)
	}
}

// ForceUnlock implements state.Backend: it finds the holder (LockInfo)
// and, if the ID matches, sends UNLOCK with the holder's lock info, as
// Terraform's force-unlock does. A server that does not say who holds a
// lock gets the UNLOCK with the ID alone.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	addr, err := b.resolve(b.cfg.unlockAddress, workspace)
	if err != nil {
		return err
	}
	cur, err := b.LockInfo(ctx, workspace)
	if err != nil {
		return err
	}
	if cur == nil {
		return state.ErrNotLocked
	}
	body := wireLock{ID: id}
	if cur.ID != "" {
		if cur.ID != id {
			return fmt.Errorf("the lock is %s, not %s; nothing was unlocked: %w", cur.ID, id, state.ErrNotLocked)
		}
		body = toWire(*cur)
	}
	rq := request{op: "breaking the state lock", method: b.cfg.unlockMethod, url: addr, body: body.json(), header: jsonHeader()}
	r, err := b.do(ctx, rq)
	if err != nil {
		return err
	}
	switch {
	case r.ok():
		b.forget(id)
		return nil
	case isLocked(r.status):
		holder := holderOf(r.body)
		return fmt.Errorf("the server did not break lock %s: it says the state is held by %s; nothing was unlocked", id, &holder)
	default:
		return statusError(rq, r)
	}
}

// LockInfo implements state.Backend. The protocol has no request that
// reads a lock, so it asks with a lock request carrying IntentHeader
// "probe". A server that knows the header answers without taking the
// lock. A plain one answers 423 or 409 with the holder, or takes the
// free lock and answers 200; the probe then releases it at once (for
// those few milliseconds, others see the state locked by
// "dstack lock probe").
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	addr, err := b.resolve(b.cfg.lockAddress, workspace)
	if err != nil {
		return nil, err
	}
	statePath, _ := b.resolve(b.cfg.address, workspace)
	// A lease that cannot outlive a failed release for long on servers
	// that read it.
	probe := toWire(state.PrepareLock(state.LockInfo{Operation: "probe", Who: "dstack lock probe", Path: redact(statePath)}, b.now(), 10*time.Second))
	h := jsonHeader()
	h.Set(IntentHeader, "probe")
	rq := request{op: "reading the state lock", method: b.cfg.lockMethod, url: addr, body: probe.json(), header: h}
	r, err := b.do(ctx, rq)
	if err != nil {
		return nil, err
	}
	switch {
	case r.ok() && r.lease():
		return nil, nil
	case r.ok():
		if err := b.release(ctx, workspace, probe); err != nil {
			return nil, fmt.Errorf("reading the state lock: the server gave the probe lock %s, and releasing it failed: %w; run: dstack force-unlock %s", probe.ID, err, probe.ID)
		}
		return nil, nil
	case isLocked(r.status):
		holder := holderOf(r.body)
		return &holder, nil
	default:
		return nil, statusError(rq, r)
	}
}

// Workspaces implements state.Backend. Listing is not part of the
// protocol: with workspaces_address set it is a GET there, answered with
// a JSON list of names; without, only "default" can be found.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	if b.cfg.workspacesAddress == "" {
		addr, err := b.resolve(b.cfg.address, state.DefaultWorkspace)
		if err != nil {
			return nil, err
		}
		if _, _, err := b.fetch(ctx, addr); errors.Is(err, state.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return []string{state.DefaultWorkspace}, nil
	}
	rq := request{op: "listing workspaces", method: http.MethodGet, url: b.cfg.workspacesAddress}
	r, err := b.do(ctx, rq)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, statusError(rq, r)
	}
	var names []string
	if err := json.Unmarshal(r.body, &names); err != nil {
		return nil, fmt.Errorf("listing workspaces: %s did not answer with a JSON list of names: %v", redact(b.cfg.workspacesAddress), err)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// DeleteWorkspace implements state.Backend: DELETE at the workspace's
// address. A server that keeps locks apart from state may keep the lock.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	addr, err := b.resolve(b.cfg.address, workspace)
	if err != nil {
		return err
	}
	rq := request{op: "deleting workspace " + workspace, method: http.MethodDelete, url: addr}
	r, err := b.do(ctx, rq)
	if err != nil {
		return err
	}
	if !r.ok() && r.status != http.StatusNotFound {
		return statusError(rq, r)
	}
	return nil
}
