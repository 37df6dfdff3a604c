package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// frontHandler answers in the shapes the equivalence test compares, and
// says whether the front (no Hijacker) or net/http served the request.
func frontHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s %s q=%s", r.Method, r.Host, r.Header.Get("X-A"), r.URL.Query().Get("q"))
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hi</body></html>")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 100; i++ {
			fmt.Fprintf(w, "%s line %d\n", strings.Repeat("x", 60), i)
		}
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "12345")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-B", "b")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Multi"] = []string{"1", "2"}
		w.WriteHeader(418)
		io.WriteString(w, "short and stout")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo " + line)
			brw.Flush()
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "body=%s ", b)
		}
		if _, ok := w.(http.Hijacker); ok {
			io.WriteString(w, "net/http")
		} else {
			io.WriteString(w, "front")
		}
	})
	return mux
}

// answer is what a client makes of one response.
type answer struct {
	Status           int
	Header, Trailer  http.Header
	Body             string
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Err              string
}

// exchange writes raw on a new connection to addr and reads the answers
// to the methods, in order.
func exchange(t *testing.T, addr, raw string, methods ...string) []answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []answer
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			out = append(out, answer{Err: "no answer"})
			break
		}
		b, err := io.ReadAll(resp.Body)
		a := answer{Status: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Body: string(b),
			ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding, Close: resp.Close}
		if err != nil {
			a.Err = "cut"
		}
		a.Header.Del("Date")
		out = append(out, a)
	}
	return out
}

// TestFrontAnswersAsNetHTTP sends the same bytes to a Front and to a
// plain http.Server with the same handler: every answer must be the
// same (headers, framing, trailers, closing), malformed and oversized
// requests included, the simple ones served by the front itself.
func TestFrontAnswersAsNetHTTP(t *testing.T) {
	h := frontHandler()
	front := serveFront(t, h)
	ref := httptest.NewServer(h)
	defer ref.Close()
	fa, ra := front.Listener.Addr().String(), ref.Listener.Addr().String()
	get := func(path string, extra ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: svc.example\r\n" + strings.Join(extra, "") + "\r\n"
	}
	for _, tc := range []struct {
		name, raw string
		methods   []string
	}{
		{"small", get("/small?q=1", "X-A: a\r\n"), []string{"GET"}},
		{"sniffed", get("/html"), []string{"GET"}},
		{"chunked", get("/big"), []string{"GET"}},
		{"length", get("/length"), []string{"GET"}},
		{"empty", get("/empty"), []string{"GET"}},
		{"head", "HEAD /small HTTP/1.1\r\nHost: h\r\n\r\n" + get("/length"), []string{"HEAD", "GET"}},
		{"head length", "HEAD /length HTTP/1.1\r\nHost: h\r\n\r\n", []string{"HEAD"}},
		{"options delete", "OPTIONS /small HTTP/1.1\r\nHost: h\r\n\r\nDELETE /small HTTP/1.1\r\nHost: h\r\n\r\n", []string{"OPTIONS", "DELETE"}},
		{"204 304 418", get("/nocontent") + get("/notmodified") + get("/teapot"), []string{"GET", "GET", "GET"}},
		{"stream", get("/stream"), []string{"GET"}},
		{"trailers", get("/trailers", "TE: trailers\r\n"), []string{"GET"}},
		{"pipelined", get("/small?q=1") + get("/big") + get("/small?q=3"), []string{"GET", "GET", "GET"}},
		{"client close", get("/small", "Connection: close\r\n") + get("/small"), []string{"GET", "GET"}},
		{"handler close", get("/close") + get("/small"), []string{"GET", "GET"}},
		{"abort", get("/abort") + get("/small"), []string{"GET", "GET"}},
		{"bare LF", "GET /small HTTP/1.1\nHost: h\n\n", []string{"GET"}},
		{"no host", "GET /small HTTP/1.1\r\n\r\n", []string{"GET"}},
		{"two hosts", "GET /small HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []string{"GET"}},
		{"bad host", "GET /small HTTP/1.1\r\nHost: a b\r\n\r\n", []string{"GET"}},
		{"bad header line", "GET /small HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", []string{"GET"}},
		{"bad request line", "GET\r\nHost: a\r\n\r\n", []string{"GET"}},
		{"control byte", "GET /small HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", []string{"GET"}},
		{"oversized", get("/small", "X-Big: "+strings.Repeat("b", 1<<20+8192)+"\r\n"), []string{"GET"}},
		{"large header", get("/small", "X-A: "+strings.Repeat("a", 6000)+"\r\n"), []string{"GET"}},
		{"fast then body", get("/who") + "POST /who HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" + get("/who"), []string{"GET", "POST", "GET"}},
		{"http/1.0", "GET /small HTTP/1.0\r\nHost: h\r\n\r\n", []string{"GET"}},
		{"expect", "GET /small HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", []string{"GET"}},
	} {
		got, want := exchange(t, fa, tc.raw, tc.methods...), exchange(t, ra, tc.raw, tc.methods...)
		if tc.name == "fast then body" {
			// The front serves the first itself; the rest go to net/http.
			if len(got) != 3 || got[0].Body != "front" || got[1].Body != "body=abc net/http" || got[2].Body != "net/http" {
				t.Errorf("%s: %+v", tc.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\nfront:    %+v\nnet/http: %+v", tc.name, got, want)
		}
	}
	if got := exchange(t, fa, get("/who"), "GET"); got[0].Body != "front" {
		t.Errorf("a simple request was not served by the front: %+v", got)
	}
}

// TestFrontHandsAnUpgradeOver: after a request the front answered, an
// upgrade on the same connection reaches net/http, which hijacks it.
func TestFrontHandsAnUpgradeOver(t *testing.T) {
	front := serveFront(t, frontHandler())
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /who HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "front" {
		t.Fatalf("first request: %s", b)
	}
	// The upgrade and the first bytes after it in one write: the bytes
	// the front buffered must reach the new protocol.
	io.WriteString(c, "GET /who HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %+v", err, resp)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("after the upgrade: %q %v", line, err)
	}
}

// TestFrontHalfCloseAndTimeouts: a client that shuts its side after the
// request still gets the answer; a header that never ends and an idle
// connection are closed by the server's timeouts.
func TestFrontHalfCloseAndTimeouts(t *testing.T) {
	ts := httptest.NewUnstartedServer(frontHandler())
	ts.Config.ReadHeaderTimeout = 200 * time.Millisecond
	ts.Config.IdleTimeout = 300 * time.Millisecond
	f := &Front{Server: ts.Config}
	go f.Serve(ts.Listener)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	addr := ts.Listener.Addr().String()

	c, _ := net.Dial("tcp", addr)
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(b), "hello GET h  q=") {
		t.Errorf("half-closed client got %q, %v", b, err)
	}

	for _, tc := range []struct{ name, raw string }{
		{"header timeout", "GET /small HTTP/1.1\r\nHost: h\r\n"},
		{"idle timeout", "GET /small HTTP/1.1\r\nHost: h\r\n\r\n"},
	} {
		c, _ := net.Dial("tcp", addr)
		io.WriteString(c, tc.raw)
		start := time.Now()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(c)
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || time.Since(start) > 2*time.Second {
			t.Errorf("%s: the connection stayed open (%v)", tc.name, err)
		}
	}
}

// TestQueuedRequestEndsWhenItsClientGoes: a request queued for a service
// without replicas leaves the queue (and the stats the control loop
// scales on) when its client closes the connection, and a watched
// connection still serves its next request.
func TestQueuedRequestEndsWhenItsClientGoes(t *testing.T) {
	s, gw := newGateway(t, Options{QueueTimeout: 20 * time.Second}, Table{Services: []Service{{Name: "web"}}})
	queued := func() int64 {
		st := s.Stats()
		if len(st.Services) != 1 {
			return -1
		}
		return st.Services[0].Queued
	}
	waitQueued := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); queued() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("queued: %d, want %d", queued(), want)
			}
		}
	}
	c, err := net.Dial("tcp", gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /proxy/services/main/web/q HTTP/1.1\r\nHost: h\r\n\r\n")
	waitQueued(1)
	c.Close()
	waitQueued(0)

	// A replica comes while a request waits: it is answered, and the
	// same connection serves the next one.
	a := replicaServer(t, "a")
	c, err = net.Dial("tcp", gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /proxy/services/main/web/q HTTP/1.1\r\nHost: h\r\n\r\n")
	waitQueued(1)
	if err := s.SetTable(Table{Services: []Service{{Name: "web", Replicas: []string{a.URL}}}}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "a /q") {
			t.Fatalf("answer %d: %d %s", i, resp.StatusCode, b)
		}
		io.WriteString(c, "GET /proxy/services/main/web/q HTTP/1.1\r\nHost: h\r\n\r\n")
	}
}
