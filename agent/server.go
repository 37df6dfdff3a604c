package agent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds request bodies: a job spec is a few kilobytes.
const maxBodyBytes = 1 << 20

// ServerOptions configure a Server.
type ServerOptions struct {
	// Token is the bearer token every request must carry. It must not be
	// empty: an agent without one would run anything for anyone.
	Token string
	// Inventory reports the host; nil reports only what the Go runtime
	// knows (hostname, OS, architecture, CPUs).
	Inventory func(context.Context) (Inventory, error)
	// Version is reported by GET /health.
	Version string
	// Logger receives request failures; nil discards them.
	Logger *slog.Logger
}

// Server is the agent's HTTP API over a Manager. Every request must carry
// "Authorization: Bearer <token>"; others get 401 before any routing, so
// an unauthenticated caller learns nothing, not even which paths exist.
type Server struct {
	m         *Manager
	tokenHash [sha256.Size]byte
	inventory func(context.Context) (Inventory, error)
	version   string
	log       *slog.Logger
	mux       *http.ServeMux
}

// Route is one endpoint of the API.
type Route struct {
	Method string
	// Path is the ServeMux pattern's path, such as "/jobs/{id}".
	Path   string
	handle http.HandlerFunc
}

// NewServer builds the API over m.
func NewServer(m *Manager, opts ServerOptions) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("agent: empty token")
	}
	s := &Server{
		m:         m,
		tokenHash: sha256.Sum256([]byte(opts.Token)),
		inventory: opts.Inventory,
		version:   opts.Version,
		log:       cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		mux:       http.NewServeMux(),
	}
	for _, r := range s.Routes() {
		s.mux.HandleFunc(r.Method+" "+r.Path, r.handle)
	}
	return s, nil
}

// Routes lists every endpoint of the API; the server registers exactly
// these, and agent/openapi.yaml documents them.
func (s *Server) Routes() []Route {
	return []Route{
		{"GET", "/health", s.health},
		{"GET", "/inventory", s.getInventory},
		{"POST", "/jobs", s.submit},
		{"GET", "/jobs", s.list},
		{"GET", "/jobs/{id}", s.get},
		{"POST", "/jobs/{id}/stop", s.stop},
		{"DELETE", "/jobs/{id}", s.delete},
		{"GET", "/jobs/{id}/logs", s.logs},
		{"GET", "/jobs/{id}/metrics", s.metrics},
		{"POST", "/jobs/{id}/exec", s.exec},
		{"HEAD", "/blobs/{sha256}", s.headBlob},
		{"PUT", "/blobs/{sha256}", s.putBlob},
	}
}

// ServeHTTP checks the bearer token and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dstack-agent"`)
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "missing or invalid bearer token"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized compares the request's token with the agent's in constant
// time. Comparing hashes keeps the time independent of the length too.
func (s *Server) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok", Version: s.version, Runtimes: s.m.Runtimes(), Interruption: s.m.Interruption()})
}

func (s *Server) getInventory(w http.ResponseWriter, r *http.Request) {
	var inv Inventory
	if s.inventory != nil {
		var err error
		if inv, err = s.inventory(r.Context()); err != nil {
			s.fail(w, r, fmt.Errorf("inventory: %w", err))
			return
		}
	} else {
		inv.Hostname, _ = os.Hostname()
		inv.OS, inv.Arch, inv.CPUs = runtime.GOOS, runtime.GOARCH, runtime.NumCPU()
	}
	inv.Runtimes = s.m.Runtimes()
	writeJSON(w, http.StatusOK, inv)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	var spec JobSpec
	if err := decodeBody(w, r, &spec); err != nil {
		s.fail(w, r, err)
		return
	}
	job, created, err := s.m.Submit(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/jobs/"+job.Spec.ID)
	}
	writeJSON(w, status, job)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.m.List(r.URL.Query().Get("run_name")))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	job, err := s.m.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	var req StopRequest
	if err := decodeBody(w, r, &req); err != nil && !errors.Is(err, errEmptyBody) {
		s.fail(w, r, err)
		return
	}
	job, err := s.m.Stop(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if err := s.m.Delete(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// logs streams a job's log from ?since=<offset> (0 by default), or from
// the first line written at or after ?since_time=<RFC 3339 time>; with
// ?follow=1 it streams on until the job ends and its log is drained, or
// the client goes away. The body is the raw bytes, written and flushed a
// chunk of up to 1 MiB at a time; HeaderLogOffset says where it starts.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since int64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf("since=%q: want a byte offset", v)})
			return
		}
		since = n
	}
	follow, err := parseBool(q.Get("follow"))
	if err != nil {
		s.fail(w, r, &requestError{status: http.StatusBadRequest, msg: "follow: " + err.Error()})
		return
	}
	if v := q.Get("since_time"); v != "" {
		// From a point in time: the first line written then or later
		// (see logtimes.go), or later still if since says so.
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, r, &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf("since_time=%q: want an RFC 3339 time", v)})
			return
		}
		off, err := s.m.LogOffsetAt(r.PathValue("id"), t)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		since = max(since, off)
	}
	lr, err := s.m.OpenLog(r.PathValue("id"), since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if follow {
		// Someone following a job's output is using it.
		defer s.m.Session(r.PathValue("id"))()
	}
	defer lr.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderLogOffset, strconv.FormatInt(lr.Offset(), 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		chunk, err := lr.Next(r.Context(), follow)
		if err != nil {
			// EOF is the end; a gap or the client leaving end the stream
			// early, and the client resumes from its offset.
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrLogGap) && r.Context().Err() == nil {
				s.log.Warn("log stream failed", "job", r.PathValue("id"), "err", err)
			}
			return
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	m, err := s.m.Metrics(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func parseBool(v string) (bool, error) {
	switch v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("%q: want 1, 0, true or false", v)
}

// requestError is a problem with the request, shown to the client as is.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

var errEmptyBody = &requestError{status: http.StatusBadRequest, msg: "empty request body"}

// decodeBody reads one JSON value from the request body into v, refusing
// unknown fields (a setting the agent does not know must not be silently
// dropped) and bodies over maxBodyBytes.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errEmptyBody
		}
		return &requestError{status: http.StatusBadRequest, msg: "bad request body: " + err.Error()}
	}
	if dec.More() {
		return &requestError{status: http.StatusBadRequest, msg: "bad request body: more than one JSON value"}
	}
	return nil
}

// fail writes err as a JSON error. Errors the agent defines carry messages
// meant for the client; anything else is an internal failure, logged in
// full and reported with its message (the client is authenticated, and
// "open log: no space left on device" helps more than "internal error").
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var reqErr *requestError
	var specErr *InvalidSpecError
	switch {
	case errors.As(err, &reqErr):
		status = reqErr.status
	case errors.As(err, &specErr):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrNoGPUs):
		status = http.StatusConflict
	case errors.Is(err, ErrNoRuntime):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, ErrClosed), errors.Is(err, ErrInterrupted):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client went away; nobody reads an answer
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, ErrorResponse{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is sent; a failed write has no one to tell
}
