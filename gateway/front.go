package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Front serves plain HTTP/1.1 connections for an http.Server: simple
// requests (no body, no upgrade, no Expect) are read and answered by the
// connection's own goroutine with the server's handler, one buffered
// write per answer, without net/http's per-request background reader and
// response machinery, which were most of the gateway's CPU time besides
// the system calls. A connection whose next request is anything else (a
// body, an upgrade, HTTP/1.0 or 2, a malformed or oversized header) is
// handed, unread bytes first, to the http.Server for good, which answers
// it exactly as it would have from the start. TLS is not served here.
type Front struct {
	// Server holds the handler and the timeouts, and serves the
	// connections handed over.
	Server *http.Server

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*frontConn]struct{}
	closing atomic.Bool
	handoff *chanListener
}

// frontBufferSize bounds the header the front reads itself: a larger one
// goes to net/http, which applies MaxHeaderBytes (431).
const frontBufferSize = 4096

// Serve accepts connections on l until it fails or Shutdown closes it.
func (f *Front) Serve(l net.Listener) error {
	f.mu.Lock()
	if f.closing.Load() {
		f.mu.Unlock()
		return http.ErrServerClosed
	}
	f.ln = l
	f.conns = map[*frontConn]struct{}{}
	f.handoff = &chanListener{addr: l.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	f.mu.Unlock()
	errs := make(chan error, 1)
	go func() { errs <- f.Server.Serve(f.handoff) }()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if f.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			f.handoff.Close()
			return err
		}
		delay = 0
		fc := &frontConn{f: f, c: c}
		f.mu.Lock()
		f.conns[fc] = struct{}{}
		f.mu.Unlock()
		go fc.serve()
	}
}

// Shutdown stops accepting, closes idle connections, waits for the
// answers in progress, then shuts the http.Server down.
func (f *Front) Shutdown(ctx context.Context) error {
	f.closing.Store(true)
	f.mu.Lock()
	if f.ln != nil {
		f.ln.Close()
	}
	f.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		n := len(f.conns)
		for fc := range f.conns {
			if fc.idle.Load() {
				_ = fc.c.SetReadDeadline(time.Unix(1, 0))
			}
		}
		f.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return f.Server.Shutdown(ctx)
}

func (f *Front) forget(fc *frontConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
}

// chanListener is the http.Server's listener: the connections the front
// hands over.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// give hands c over; false when the server no longer accepts.
func (l *chanListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// bufferedConn reads what the front had buffered before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite lets net/http end a connection gracefully, as on its own
// connections.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type frontConn struct {
	f      *Front
	c      net.Conn
	remote string
	idle   atomic.Bool
	br     *bufio.Reader
	bw     *bufio.Writer
	parse  *bufio.Reader
	w      frontWriter
}

func (fc *frontConn) serve() {
	handed := false
	defer func() {
		fc.f.forget(fc)
		if !handed {
			fc.c.Close()
		}
	}()
	hs := fc.f.Server
	fc.remote = fc.c.RemoteAddr().String()
	fc.br = bufio.NewReaderSize(fc.c, frontBufferSize)
	fc.bw = bufio.NewWriterSize(fc.c, frontBufferSize)
	fc.parse = bufio.NewReaderSize(nil, 16)
	hdrTimeout := hs.ReadHeaderTimeout
	if hdrTimeout <= 0 {
		hdrTimeout = hs.ReadTimeout
	}
	idleTimeout := hs.IdleTimeout
	if idleTimeout <= 0 {
		idleTimeout = hs.ReadTimeout
	}
	for first := true; ; first = false {
		if !first {
			// Between requests: the idle timeout, as net/http.
			_ = fc.c.SetReadDeadline(deadline(idleTimeout))
			fc.idle.Store(true)
			if fc.f.closing.Load() {
				return
			}
			if _, err := fc.br.Peek(1); err != nil {
				return
			}
			fc.idle.Store(false)
		}
		_ = fc.c.SetReadDeadline(deadline(hdrTimeout))
		n, err := fc.headerLen()
		if err != nil {
			var ne net.Error
			if fc.br.Buffered() == 0 || errors.As(err, &ne) && ne.Timeout() || fc.f.closing.Load() {
				return
			}
		}
		var r *http.Request
		if n > 0 {
			r = fc.request(n)
		}
		if r == nil {
			// Not ours: net/http reads it from the start.
			_ = fc.c.SetReadDeadline(time.Time{})
			handed = fc.f.handoff.give(&bufferedConn{Conn: fc.c, r: fc.br})
			return
		}
		_, _ = fc.br.Discard(n)
		_ = fc.c.SetReadDeadline(time.Time{})
		if hs.WriteTimeout > 0 {
			_ = fc.c.SetWriteDeadline(time.Now().Add(hs.WriteTimeout))
		}
		if !fc.handle(r) || fc.f.closing.Load() {
			return
		}
	}
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// headerLen waits for a whole request header in the buffer and returns
// its length (the empty line included); 0 when the buffer fills first.
func (fc *frontConn) headerLen() (int, error) {
	searched := 0
	for {
		b, _ := fc.br.Peek(fc.br.Buffered())
		for i := max(searched-2, 0); ; {
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				break
			}
			i += j + 1
			if i < len(b) && b[i] == '\n' {
				return i + 1, nil
			}
			if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
				return i + 2, nil
			}
		}
		searched = len(b)
		if len(b) == fc.br.Size() {
			return 0, nil
		}
		if _, err := fc.br.Peek(len(b) + 1); err != nil {
			return 0, err
		}
	}
}

// request parses the buffered header of n bytes, or returns nil when it
// is not a simple request the front answers itself.
func (fc *frontConn) request(n int) *http.Request {
	b, _ := fc.br.Peek(n)
	if !frontBytesOK(b) || hostLines(b) != 1 {
		return nil
	}
	fc.parse.Reset(bytes.NewReader(b))
	r, err := http.ReadRequest(fc.parse)
	if err != nil || !frontSimple(r) {
		return nil
	}
	r.RemoteAddr = fc.remote
	return r
}

// frontBytesOK reports whether a header holds no control bytes but line
// ends and tabs: anything odd is left to net/http's checks.
func frontBytesOK(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\r' && c != '\n' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// frontSimple reports whether the front answers r itself.
func frontSimple(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions:
	default:
		return false
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.RequestURI == "*" {
		return false
	}
	h := r.Header
	if h["Expect"] != nil || h["Upgrade"] != nil || h["Http2-Settings"] != nil || h["Transfer-Encoding"] != nil {
		return false
	}
	// http.ReadRequest took the Host header out; hostLines counted it.
	return r.Host != "" && simpleHost(r.Host)
}

// hostLines counts the header's Host lines.
func hostLines(b []byte) int {
	n := 0
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return n
		}
		b = b[i+1:]
		if len(b) >= 5 && b[4] == ':' && (b[0]|0x20) == 'h' && (b[1]|0x20) == 'o' && (b[2]|0x20) == 's' && (b[3]|0x20) == 't' {
			n++
		}
	}
}

func simpleHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// handle answers r; false when the connection must close.
func (fc *frontConn) handle(r *http.Request) (keep bool) {
	w := &fc.w
	w.reset(fc, r)
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				logf := log.Printf
				if l := fc.f.Server.ErrorLog; l != nil {
					logf = l.Printf
				}
				logf("gateway: panic serving %s: %v\n%s", fc.remote, p, debug.Stack())
			}
			_ = fc.bw.Flush()
			keep = false
		}
	}()
	fc.f.Server.Handler.ServeHTTP(w, r)
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter {
		if tc, ok := fc.c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
			// As net/http: give the client time to read the answer
			// before a reset for unread bytes could destroy it.
			time.Sleep(500 * time.Millisecond)
		}
		return false
	}
	return true
}

// bufferBeforeChunking is how much of a body is held to answer with a
// Content-Length, as net/http does.
const bufferBeforeChunking = 2048

// frontWriter is the http.ResponseWriter of the front's requests.
type frontWriter struct {
	fc          *frontConn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	committed   bool
	chunked     bool
	noBody      bool
	cl          int64
	written     int64
	body        []byte
	closeAfter  bool
	declared    []string
	err         error
}

func (w *frontWriter) reset(fc *frontConn, r *http.Request) {
	body := w.body[:0]
	if body == nil {
		body = make([]byte, 0, bufferBeforeChunking)
	}
	h := w.header
	if h == nil {
		h = http.Header{}
	} else {
		clear(h)
	}
	*w = frontWriter{fc: fc, req: r, header: h, body: body, cl: -1, closeAfter: r.Close}
}

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("gateway: invalid status code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational answer goes at once; the final one follows.
		bw := w.fc.bw
		writeStatusLine(bw, code)
		writeHeaderLines(bw, w.header, nil)
		bw.WriteString("\r\n")
		w.err = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if v := w.header["Content-Length"]; v != nil {
		if cl, err := strconv.ParseInt(v[0], 10, 64); err == nil && cl >= 0 {
			w.cl = cl
		}
	}
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code < 200 || code == http.StatusNoContent || code == http.StatusNotModified)
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.noBody {
		return len(p), nil // HEAD
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.body)+len(p) <= bufferBeforeChunking {
			w.body = append(w.body, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

func (w *frontWriter) writeBody(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bw := w.fc.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what was written so far (a stream's events).
func (w *frontWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.err == nil {
		w.err = w.fc.bw.Flush()
	}
}

// FlushError is Flush for http.ResponseController.
func (w *frontWriter) FlushError() error {
	w.Flush()
	return w.err
}

// WatchClient returns a context that ends when the client closes its
// connection (or sends its next request), until stop: net/http's server
// reads in the background during every request for this, the front only
// while a request waits in a queue.
func (w *frontWriter) WatchClient(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	fc := w.fc
	done := make(chan struct{})
	var stopping atomic.Bool
	go func() {
		defer close(done)
		if _, err := fc.br.Peek(1); err != nil && !stopping.Load() {
			cancel()
		}
	}()
	return ctx, func() {
		stopping.Store(true)
		_ = fc.c.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = fc.c.SetReadDeadline(time.Time{})
		cancel()
	}
}

// commit writes the status line and the header; final says the handler
// is done, so that a held body's length is known.
func (w *frontWriter) commit(final bool) {
	w.committed = true
	h := w.header
	bw := w.fc.bw
	code := w.status
	var trailers []string
	for _, v := range h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				trailers = append(trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	if hasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	var extra [4]string
	add := extra[:0]
	_, hasType := h["Content-Type"]
	if !hasType && bodyAllowed(code) && h.Get("Content-Encoding") == "" && len(w.body) > 0 {
		add = append(add, "Content-Type: "+http.DetectContentType(w.body))
	}
	switch {
	case !bodyAllowed(code):
		w.noBody = true
	case w.req.Method == http.MethodHead:
		w.noBody = true
		if final && len(w.body) > 0 && h["Content-Length"] == nil {
			add = append(add, "Content-Length: "+strconv.Itoa(len(w.body)))
		}
	case h["Content-Length"] != nil && w.cl >= 0:
	case final && trailers == nil && !hasPrefixKey(h) && h["Transfer-Encoding"] == nil:
		h.Del("Content-Length")
		add = append(add, "Content-Length: "+strconv.Itoa(len(w.body)))
		w.cl = int64(len(w.body))
	default:
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
		w.chunked = true
		add = append(add, "Transfer-Encoding: chunked")
	}
	if w.closeAfter && !hasToken(h["Connection"], "close") {
		add = append(add, "Connection: close")
	}
	var skip map[string]bool
	if trailers != nil {
		skip = make(map[string]bool, len(trailers))
		for _, k := range trailers {
			skip[k] = true
		}
	}
	writeStatusLine(bw, code)
	writeHeaderLines(bw, h, skip)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		var buf [len(http.TimeFormat)]byte
		bw.Write(time.Now().UTC().AppendFormat(buf[:0], http.TimeFormat))
		bw.WriteString("\r\n")
	}
	for _, l := range add {
		bw.WriteString(l)
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	if err != nil && w.err == nil {
		w.err = err
	}
	w.declared = trailers
	body := w.body
	w.body = w.body[:0]
	if len(body) > 0 && !w.noBody {
		w.writeBody(body)
	}
}

func hasPrefixKey(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.WriteString(strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

var headerNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func writeHeaderLines(bw *bufio.Writer, h http.Header, skip map[string]bool) {
	for k, vs := range h {
		if skip[k] || strings.HasPrefix(k, http.TrailerPrefix) || !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				v = headerNewlines.Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// finish ends the answer once the handler returned.
func (w *frontWriter) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	bw := w.fc.bw
	if w.chunked && w.err == nil {
		bw.WriteString("0\r\n")
		for _, k := range w.declared {
			for _, v := range w.header[k] {
				bw.WriteString(k)
				bw.WriteString(": ")
				bw.WriteString(headerNewlines.Replace(v))
				bw.WriteString("\r\n")
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					bw.WriteString(name)
					bw.WriteString(": ")
					bw.WriteString(headerNewlines.Replace(v))
					bw.WriteString("\r\n")
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = bw.Flush()
	}
	if w.err != nil {
		return w.err
	}
	if !w.noBody && w.cl >= 0 && w.written < w.cl {
		// A short body: the client must not read the next answer as
		// its rest.
		return errors.New("gateway: the handler wrote less than its Content-Length")
	}
	return nil
}
