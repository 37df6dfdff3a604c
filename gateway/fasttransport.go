package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// directTransport sends a request without a body over a kept-alive
// HTTP/1.1 connection from the calling goroutine itself: write the
// request, read the response, and the connection goes back to the pool
// when the body has been read to its end. net/http's Transport hands
// every request to two goroutines of its own per connection (a writer
// and a reader), and those hand-offs were much of the gateway's cost per
// request under load. Requests with a body, upgrades and anything the
// pool cannot serve go to the fallback transport.
type directTransport struct {
	fallback http.RoundTripper
	dialer   net.Dialer
	mu       sync.Mutex
	idle     map[string][]*directConn
	maxIdle  int
}

type directConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func newDirectTransport(fallback http.RoundTripper) *directTransport {
	return &directTransport{fallback: fallback, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		idle: map[string][]*directConn{}, maxIdle: 256}
}

func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody) || req.Header.Get("Upgrade") != "" || req.Method == http.MethodConnect {
		return t.fallback.RoundTrip(req)
	}
	return t.roundTripRaw(req, req.URL.Host, func(bw *bufio.Writer) error { return req.Write(bw) })
}

// roundTripRaw sends the request that write writes (one without a
// body) to host and reads the answer to it; req gives the context and
// the method. Interim (1xx) answers are passed over.
func (t *directTransport) roundTripRaw(req *http.Request, host string, write func(*bufio.Writer) error) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		dc, reused := t.get(host)
		if dc == nil {
			var err error
			if dc, err = t.dial(req.Context(), host); err != nil {
				return nil, err
			}
		}
		resp, err := t.exchange(dc, req, host, write)
		if err == nil {
			return resp, nil
		}
		dc.c.Close()
		// A kept-alive connection the replica closed meanwhile fails
		// before any answer: once more on a new one (no body was sent).
		if !reused || attempt > 0 || req.Context().Err() != nil {
			return nil, err
		}
	}
}

func (t *directTransport) dial(ctx context.Context, host string) (*directConn, error) {
	c, err := t.dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return &directConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

func (t *directTransport) exchange(dc *directConn, req *http.Request, host string, write func(*bufio.Writer) error) (*http.Response, error) {
	ctx := req.Context()
	if dl, ok := ctx.Deadline(); ok {
		_ = dc.c.SetDeadline(dl)
	} else {
		_ = dc.c.SetDeadline(time.Time{})
	}
	// A client that goes away ends the exchange.
	stop := context.AfterFunc(ctx, func() { _ = dc.c.SetDeadline(time.Unix(1, 0)) })
	if err := write(dc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := dc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := http.ReadResponse(dc.br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(dc.br, req)
	}
	if err != nil {
		stop()
		return nil, err
	}
	resp.Body = &directBody{rc: resp.Body, t: t, dc: dc, host: host, stop: stop, keep: !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	return resp, nil
}

func (t *directTransport) get(host string) (*directConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[host]
	if len(l) == 0 {
		return nil, false
	}
	dc := l[len(l)-1]
	t.idle[host] = l[:len(l)-1]
	return dc, true
}

func (t *directTransport) put(host string, dc *directConn) {
	t.mu.Lock()
	if len(t.idle[host]) < t.maxIdle {
		t.idle[host] = append(t.idle[host], dc)
		dc = nil
	}
	t.mu.Unlock()
	if dc != nil {
		dc.c.Close()
	}
}

// directBody returns its connection to the pool once read to its end,
// and closes it otherwise.
type directBody struct {
	rc   io.ReadCloser
	t    *directTransport
	dc   *directConn
	host string
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *directBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.rc.Close()
	stopped := b.stop()
	if b.eof && b.keep && stopped && b.dc.br.Buffered() == 0 {
		b.t.put(b.host, b.dc)
		return err
	}
	b.dc.c.Close()
	return err
}
