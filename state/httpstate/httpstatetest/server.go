// Package httpstatetest is a state server speaking Terraform's HTTP
// backend protocol, for tests. It exists because no existing Terraform
// HTTP state server could be installed and run where these tests run; it
// is not meant to serve real state.
//
// The protocol, as Terraform's http backend documents it: GET of a state
// address returns the state (404 when there is none); POST (or PUT)
// stores the body, with ?ID=<lock id> when the writer holds the lock;
// DELETE removes it. LOCK and UNLOCK at the same address carry the lock
// info as JSON; LOCK answers 200 when the lock was taken and 423 Locked,
// with the holder's lock info, when it is held.
//
// Beyond the plain protocol, unless Plain is set, the server implements
// what state/httpstate uses for compare-and-swap and leases:
//
//   - Every stored state has a strong ETag (a hash of its bytes), sent
//     with GET and with a successful write. A write with If-Match that
//     does not match, or with If-None-Match: * over an existing state,
//     changes nothing and gets 412 Precondition Failed.
//   - The lock body's Expires minus its Created is the lease. The server
//     measures it on its own clock from when the request arrives, so the
//     client's clock does not matter, and a lock whose lease has run out
//     is given to the next LOCK. Stored locks carry the server's Created
//     and Expires, and a successful LOCK returns the lock as stored.
//   - A LOCK with the ID of the lock held is a renewal: the lease is
//     extended from now. With header Dstack-Lock-Intent: renew, a LOCK
//     never takes a free lock (409) or another's (423); with
//     Dstack-Lock-Intent: probe, it takes nothing and answers 423 with
//     the lock held, whether or not its lease has run out, or 200.
//     Responses carry Dstack-Lease: 1.
//   - A write with ?ID= is refused (423, with the holder) while another
//     ID holds a live lock. UNLOCK releases only the lock whose ID is in
//     the body (423 for another's; 200 when nothing is held).
//   - GET /workspaces lists the names that have state, as a JSON array.
//
// Addresses are /state/<name>, one path segment per state, so a client's
// address template is <server>/state/{workspace}. States are files in the
// directory given (<name>.tfstate); locks live in memory.
//
// With Plain set the server is a minimal Terraform-protocol server, as
// many in use are: no ETags, If-Match and If-None-Match ignored, locks
// that never expire (a second LOCK gets 423 even from the holder), 409
// for a write whose ID is not the holder's, UNLOCK with a mismatched ID
// refused with 409 and with no body (Terraform's force-unlock) always
// obeyed, no extension headers and no listing.
package httpstatetest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Header names of the extension, as state/httpstate documents them.
const (
	leaseHeader  = "Dstack-Lease"
	intentHeader = "Dstack-Lock-Intent"
)

// maxBody bounds a request body.
const maxBody = 64 << 20

// Server is the test server. Set its fields before serving.
type Server struct {
	// Plain makes it a minimal Terraform-protocol server (see the package
	// documentation).
	Plain bool
	// Username and Password, when either is set, are required as HTTP
	// basic auth on every request.
	Username, Password string
	// Now returns the time; time.Now when nil.
	Now func() time.Time

	dir   string
	mu    sync.Mutex
	locks map[string]*lockInfo
}

// lockInfo is Terraform's lock info with the lease's end.
type lockInfo struct {
	ID        string    `json:"ID"`
	Operation string    `json:"Operation"`
	Info      string    `json:"Info"`
	Who       string    `json:"Who"`
	Version   string    `json:"Version"`
	Created   time.Time `json:"Created"`
	Path      string    `json:"Path"`
	Expires   time.Time `json:"Expires,omitzero"`
}

// NewServer returns a server keeping states in dir, which must exist.
func NewServer(dir string) *Server {
	return &Server{dir: dir, locks: map[string]*lockInfo{}}
}

// StatePath is the file holding the named state.
func (s *Server) StatePath(name string) string {
	return filepath.Join(s.dir, name+".tfstate")
}

// PutRaw stores data as the named state, as a write would, with no
// checks of any kind.
func (s *Server) PutRaw(name string, data []byte) error {
	if !validName(name) {
		return fmt.Errorf("invalid state name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store(name, data)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00")
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Username != "" || s.Password != "" {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.Username)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="state"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	if !s.Plain {
		w.Header().Set(leaseHeader, "1")
	}
	if r.URL.Path == "/workspaces" && !s.Plain {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.list(w)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/state/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !validName(name) {
		http.Error(w, "invalid state name", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		s.get(w, name)
	case http.MethodPost, http.MethodPut:
		s.put(w, r, name, body)
	case http.MethodDelete:
		s.delete(w, name)
	case "LOCK":
		s.lock(w, r, name, body)
	case "UNLOCK":
		s.unlock(w, name, body)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func etag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func (s *Server) load(name string) ([]byte, bool, error) {
	data, err := os.ReadFile(s.StatePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}

// store replaces a state atomically: a temporary file renamed over it.
func (s *Server) store(name string, data []byte) error {
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), s.StatePath(name))
}

func (s *Server) get(w http.ResponseWriter, name string) {
	data, ok, err := s.load(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !ok {
		http.NotFound(w, nil)
		return
	}
	if !s.Plain {
		w.Header().Set("ETag", etag(data))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// live is the lock held on name, if any: with Plain, locks never expire.
func (s *Server) live(name string) *lockInfo {
	l := s.locks[name]
	if l == nil || s.Plain || l.Expires.IsZero() || s.now().Before(l.Expires) {
		return l
	}
	return nil
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	if id := r.URL.Query().Get("ID"); id != "" {
		if l := s.live(name); l != nil && l.ID != id {
			status := http.StatusLocked
			if s.Plain {
				status = http.StatusConflict
			}
			writeLock(w, status, l)
			return
		}
	}
	old, exists, err := s.load(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !s.Plain {
		cur := etag(old)
		if h := r.Header.Get("If-Match"); h != "" && !matches(h, cur, exists) {
			http.Error(w, "the state is not the revision named in If-Match", http.StatusPreconditionFailed)
			return
		}
		if h := r.Header.Get("If-None-Match"); h != "" && matches(h, cur, exists) {
			http.Error(w, "a state is stored already", http.StatusPreconditionFailed)
			return
		}
	}
	if err := s.store(name, body); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !s.Plain {
		w.Header().Set("ETag", etag(body))
	}
	w.WriteHeader(http.StatusOK)
}

// matches evaluates an If-Match or If-None-Match list against the stored
// state's ETag, by strong comparison (RFC 9110, section 13.1).
func matches(header, cur string, exists bool) bool {
	if strings.TrimSpace(header) == "*" {
		return exists
	}
	if !exists {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		if strings.TrimSpace(t) == cur {
			return true
		}
	}
	return false
}

func (s *Server) delete(w http.ResponseWriter, name string) {
	delete(s.locks, name)
	err := os.Remove(s.StatePath(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.NotFound(w, nil)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func writeLock(w http.ResponseWriter, status int, l *lockInfo) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(l)
}

// lease is the lease a lock body asks for: Expires − Created, or none.
func lease(l *lockInfo) time.Duration {
	if l.Created.IsZero() || l.Expires.IsZero() || !l.Expires.After(l.Created) {
		return 0
	}
	return l.Expires.Sub(l.Created)
}

func (s *Server) lock(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	var req lockInfo
	if err := json.Unmarshal(body, &req); err != nil || req.ID == "" {
		http.Error(w, "the body is not lock info with an ID", http.StatusBadRequest)
		return
	}
	if s.Plain {
		if l := s.locks[name]; l != nil {
			writeLock(w, http.StatusLocked, l)
			return
		}
		s.locks[name] = &req
		w.WriteHeader(http.StatusOK)
		return
	}
	now := s.now()
	held := s.locks[name]
	switch r.Header.Get(intentHeader) {
	case "probe":
		if held != nil {
			writeLock(w, http.StatusLocked, held)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	case "renew":
		switch {
		case held == nil:
			http.Error(w, "no lock is held", http.StatusConflict)
			return
		case held.ID != req.ID:
			writeLock(w, http.StatusLocked, held)
			return
		}
	}
	if held != nil && held.ID == req.ID {
		// A renewal: the holder's own lock, live or not, so long as
		// nobody took it over.
		if d := lease(&req); d > 0 {
			held.Expires = now.Add(d)
		}
		writeLock(w, http.StatusOK, held)
		return
	}
	if l := s.live(name); l != nil {
		writeLock(w, http.StatusLocked, l)
		return
	}
	d := lease(&req)
	req.Created, req.Expires = now, time.Time{}
	if d > 0 {
		req.Expires = now.Add(d)
	}
	s.locks[name] = &req
	writeLock(w, http.StatusOK, &req)
}

func (s *Server) unlock(w http.ResponseWriter, name string, body []byte) {
	var req lockInfo
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "the body is not lock info", http.StatusBadRequest)
			return
		}
	}
	held := s.locks[name]
	switch {
	case held == nil:
	case held.ID == req.ID:
		delete(s.locks, name)
	case s.Plain && len(body) == 0:
		// Terraform's force-unlock sends no body.
		delete(s.locks, name)
	case s.Plain:
		writeLock(w, http.StatusConflict, held)
		return
	default:
		writeLock(w, http.StatusLocked, held)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) list(w http.ResponseWriter) {
	s.mu.Lock()
	entries, err := os.ReadDir(s.dir)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	names := []string{}
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".tfstate"); ok && e.Type().IsRegular() && validName(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(names)
}
