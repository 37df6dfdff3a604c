package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Server; the zero value is usable.
type Options struct {
	// QueueTimeout is how long a request to a service with no replica
	// waits for one (DefaultQueueTimeout when zero).
	QueueTimeout time.Duration
	// DownFor is how long a replica that could not be reached is passed
	// over (DefaultDownFor when zero).
	DownFor time.Duration
	// Transport reaches the replicas (a tuned http.Transport when nil).
	Transport http.RoundTripper
	// Logf logs proxy errors (nothing when nil).
	Logf func(format string, args ...any)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultQueueTimeout = 2 * time.Minute
	DefaultDownFor      = 5 * time.Second
)

// Server is the gateway's public side: an http.Handler routing to
// services' replicas by the current Table.
type Server struct {
	opts  Options
	proxy *httputil.ReverseProxy
	// direct, when the transport is the gateway's own, also serves the
	// plain path (servePlain); nil otherwise.
	direct *directTransport
	cur    atomic.Pointer[compiled]
	mu     sync.Mutex
	// changed is closed and replaced at every SetTable, waking the
	// requests queued for a service without replicas.
	changed chan struct{}
	// stats survive table changes, by service name.
	stats   map[string]*serviceStats
	onTable []func(Table)
}

// New returns a server with an empty table.
func New(opts Options) *Server {
	if opts.QueueTimeout <= 0 {
		opts.QueueTimeout = DefaultQueueTimeout
	}
	if opts.DownFor <= 0 {
		opts.DownFor = DefaultDownFor
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var direct *directTransport
	if opts.Transport == nil {
		direct = newDirectTransport(NewTransport())
		opts.Transport = direct
	}
	s := &Server{opts: opts, direct: direct, changed: make(chan struct{}), stats: map[string]*serviceStats{}}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: &balancer{base: opts.Transport, downFor: opts.DownFor, now: opts.Now},
		// Zero: a streamed response (text/event-stream, or one without
		// a length) is flushed after every write by ReverseProxy itself
		// (as FlushInterval -1 would); others are buffered.
		FlushInterval: 0,
		ErrorHandler:  s.proxyError,
		// Copy buffers are reused: without a pool ReverseProxy
		// allocates 32 KB for every response.
		BufferPool: bufferPool{},
	}
	s.mu.Lock()
	s.cur.Store(compile(Table{}, nil, s))
	s.mu.Unlock()
	return s
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// NewTransport returns the transport the gateway reaches replicas with:
// kept-alive connections, many per replica.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		// The client's Accept-Encoding goes through as it is: the transport
		// must neither add gzip nor decompress what the replica sends.
		DisableCompression: true,
	}
}

// SetTable replaces the routing table, after checking it.
func (s *Server) SetTable(t Table) error {
	if err := t.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.cur.Store(compile(t, s.cur.Load(), s))
	close(s.changed)
	s.changed = make(chan struct{})
	hooks := s.onTable
	s.mu.Unlock()
	for _, f := range hooks {
		f(t)
	}
	return nil
}

// OnTable calls f with every table set from now on.
func (s *Server) OnTable(f func(Table)) {
	s.mu.Lock()
	s.onTable = append(s.onTable, f)
	s.mu.Unlock()
}

// Table returns the current table.
func (s *Server) Table() Table { return s.cur.Load().table }

// statsFor returns the statistics of the service name; s.mu is held.
func (s *Server) statsFor(name string) *serviceStats {
	st := s.stats[name]
	if st == nil {
		st = &serviceStats{}
		s.stats[name] = st
	}
	return st
}

func (s *Server) waitChange() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

const proxyPrefix = "/proxy/services/"
const modelsPrefix = "/proxy/models/"

// ServeHTTP routes a request: by host (RUN.DOMAIN), by path
// (/proxy/services/PROJECT/RUN/), or to the OpenAI-compatible endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := s.cur.Load()
	if c.domain != "" {
		host := strings.ToLower(hostOnly(r.Host))
		if name, ok := strings.CutSuffix(host, "."+c.domain); ok && name != "gateway" {
			s.serveService(w, r, c, name, r.URL.Path)
			return
		}
	}
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, proxyPrefix); ok {
		project, rest, _ := strings.Cut(rest, "/")
		name, sub, slash := strings.Cut(rest, "/")
		if project != c.project || name == "" {
			writeError(w, http.StatusNotFound, fmt.Sprintf("Service %s/%s not found", project, name))
			return
		}
		if !slash {
			// dstack redirects the service's root without its slash.
			u := *r.URL
			u.Path += "/"
			u.RawPath = ""
			http.Redirect(w, r, u.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		upstream := "/" + sub
		if rt := c.services[name]; rt != nil && rt.svc.KeepPrefix {
			upstream = path
		}
		s.serveService(w, r, c, name, upstream)
		return
	}
	if rest, ok := strings.CutPrefix(path, modelsPrefix); ok {
		project, sub, _ := strings.Cut(rest, "/")
		if project != c.project {
			writeError(w, http.StatusNotFound, fmt.Sprintf("Project %s not found", project))
			return
		}
		s.serveModels(w, r, c, "/"+sub)
		return
	}
	if strings.HasPrefix(path, "/v1/") {
		s.serveModels(w, r, c, strings.TrimPrefix(path, "/v1"))
		return
	}
	writeError(w, http.StatusNotFound, "No service here: services are at /proxy/services/"+c.project+"/RUN/"+hostHint(c))
}

// HTTPRedirecting is the handler of the plain HTTP listener of a
// gateway that also serves HTTPS on httpsPort: a request for the host of
// a service with HTTPS is redirected there (301), as dstack's gateway
// does, except from this machine (127.0.0.1, ::1); everything else is
// served as by ServeHTTP.
func (s *Server) HTTPRedirecting(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.cur.Load()
		if c.domain != "" && r.TLS == nil {
			host := strings.ToLower(hostOnly(r.Host))
			name, ok := strings.CutSuffix(host, "."+c.domain)
			if rt := c.services[name]; ok && rt != nil && rt.svc.HTTPS && !isLoopback(hostOnly(r.RemoteAddr)) {
				target := "https://" + host
				if httpsPort != 443 {
					target += ":" + strconv.Itoa(httpsPort)
				}
				http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusMovedPermanently)
				return
			}
		}
		s.ServeHTTP(w, r)
	})
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

func hostHint(c *compiled) string {
	if c.domain == "" {
		return ""
	}
	return " or at RUN." + c.domain
}

// authorized reports whether the request carries a token of the table.
func (c *compiled) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	tok = strings.TrimSpace(tok)
	return ok && tok != "" && c.tokens[HashToken(tok)]
}

// call is what the proxy's Rewrite and transport need to know of one
// request.
type call struct {
	route *route
	path  string
	ip    string
}

type callKey struct{}

// serveService sends a request to the service's replicas with upstream
// as the path, after auth and rate limits.
func (s *Server) serveService(w http.ResponseWriter, r *http.Request, c *compiled, name, upstream string) {
	rt := c.services[name]
	if rt == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Service %s/%s not found", c.project, name))
		return
	}
	if rt.svc.Auth && !c.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dstack"`)
		writeError(w, http.StatusUnauthorized, "Not authenticated: send Authorization: Bearer TOKEN with a token from dstack token create")
		return
	}
	s.forward(w, r, rt, upstream)
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, rt *route, upstream string) {
	ip := hostOnly(r.RemoteAddr)
	if !rt.limits.allow(upstream, ip, r.Header, s.opts.Now()) {
		writeError(w, http.StatusTooManyRequests, "Too many requests")
		return
	}
	st := rt.stats
	start := s.opts.Now()
	st.inFlight.Add(1)
	defer func() {
		st.inFlight.Add(-1)
		end := s.opts.Now()
		st.record(end, end.Sub(start))
	}()
	wait := r.Context()
	stop := func() {}
	if cw, ok := w.(clientWatcher); ok && len(rt.replicas) == 0 {
		// Nothing reads the client's connection meanwhile: a queued
		// request must still end when its client goes.
		wait, stop = cw.WatchClient(wait)
	}
	rt, ok := s.awaitReplicas(wait, rt)
	stop()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("Service %s has no ready replica (waited %s)", rt.svc.Name, s.opts.QueueTimeout))
		return
	}
	if s.direct != nil && plainRequest(r) && plainReplicas(rt) {
		s.servePlain(w, r, rt, upstream, ip)
		return
	}
	ctx := context.WithValue(r.Context(), callKey{}, &call{route: rt, path: upstream, ip: ip})
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// clientWatcher is a ResponseWriter that can tell when its client goes
// (the Front's).
type clientWatcher interface {
	WatchClient(ctx context.Context) (context.Context, func())
}

// awaitReplicas returns the service's current route once it has a
// replica: at once, or after holding the request (counted as queued)
// until a table gives it one, the queue timeout passes or the client
// goes.
func (s *Server) awaitReplicas(ctx context.Context, rt *route) (*route, bool) {
	if len(rt.replicas) > 0 {
		return rt, true
	}
	rt.stats.queued.Add(1)
	defer rt.stats.queued.Add(-1)
	timer := time.NewTimer(s.opts.QueueTimeout)
	defer timer.Stop()
	for {
		changed := s.waitChange()
		cur := s.cur.Load().services[rt.svc.Name]
		if cur == nil {
			return rt, false
		}
		if len(cur.replicas) > 0 {
			return cur, true
		}
		select {
		case <-changed:
		case <-timer.C:
			return rt, false
		case <-ctx.Done():
			return rt, false
		}
	}
}

func rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	pr.Out.URL.Path = c.path
	pr.Out.URL.RawPath = ""
	pr.SetXForwarded()
	// The replica sees the host the client asked for, as nginx's
	// proxy_set_header Host $host gives it in dstack's gateway.
	pr.Out.Host = pr.In.Host
	pr.Out.Header.Set("X-Real-IP", c.ip)
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		w.WriteHeader(499) // the client went away; nobody reads this
		return
	}
	if s.opts.Logf != nil {
		s.opts.Logf("gateway: %s %s: %v", r.Method, r.URL.Path, err)
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		writeError(w, http.StatusGatewayTimeout, "Timed out requesting upstream")
		return
	}
	writeError(w, http.StatusBadGateway, "Error requesting upstream")
}

// writeError answers with dstack's error shape: {"detail": "..."}.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": msg})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
