package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

const testToken = "dstack-test-token"

// replicaServer is a replica: it answers with its name, the path and
// host it got, and the OpenAI shapes.
func replicaServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s auth=%q", name, r.URL.RequestURI(), r.Host, r.Header.Get("Authorization"))
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"from %s"}}]}`, req.Model, name)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		// The second event waits until the client saw the first.
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(atoiDefault(r.URL.Query().Get("hold_ms"), 0)) * time.Millisecond):
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) { _, _ = io.Copy(c, c) }))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func atoiDefault(s string, d int) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return d
	}
	return n
}

func newGateway(t *testing.T, opts Options, table Table) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	if err := s.SetTable(table); err != nil {
		t.Fatal(err)
	}
	return s, serveFront(t, s)
}

// serveFront serves h as the gateway does: through a Front, with
// net/http behind it.
func serveFront(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.URL = "http://" + ts.Listener.Addr().String()
	f := &Front{Server: ts.Config}
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Serve(ts.Listener) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.Shutdown(ctx)
		<-done
	})
	return ts
}

func get(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if h := hdr["Host"]; h != "" {
		req.Host = h
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutesByPathAndHost(t *testing.T) {
	a := replicaServer(t, "a")
	_, gw := newGateway(t, Options{}, Table{Domain: "example.test", Services: []Service{
		{Name: "web", Replicas: []string{a.URL}},
		{Name: "keep", KeepPrefix: true, Replicas: []string{a.URL}},
	}})
	code, body := get(t, gw.URL+"/proxy/services/main/web/hello?x=1", nil)
	if code != 200 || !strings.HasPrefix(body, "a /hello?x=1 ") {
		t.Fatalf("path route: %d %q", code, body)
	}
	code, body = get(t, gw.URL+"/proxy/services/main/keep/hello", nil)
	if code != 200 || !strings.HasPrefix(body, "a /proxy/services/main/keep/hello ") {
		t.Fatalf("strip_prefix false keeps the path: %d %q", code, body)
	}
	code, body = get(t, gw.URL+"/hello", map[string]string{"Host": "web.example.test"})
	if code != 200 || body != `a /hello web.example.test auth=""` {
		t.Fatalf("host route: %d %q", code, body)
	}
	code, _ = get(t, gw.URL+"/proxy/services/main/web", nil)
	if code != http.StatusPermanentRedirect {
		t.Fatalf("service root without its slash: %d, want 308", code)
	}
	for _, p := range []string{"/proxy/services/main/nope/", "/proxy/services/other/web/", "/"} {
		if code, _ := get(t, gw.URL+p, nil); code != 404 {
			t.Fatalf("%s: %d, want 404", p, code)
		}
	}
}

func TestAuthNeedsAToken(t *testing.T) {
	a := replicaServer(t, "a")
	_, gw := newGateway(t, Options{}, Table{Tokens: []string{HashToken(testToken)}, Services: []Service{
		{Name: "web", Auth: true, Replicas: []string{a.URL}},
	}})
	u := gw.URL + "/proxy/services/main/web/"
	if code, _ := get(t, u, nil); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code, _ := get(t, u, map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	if code, body := get(t, u, map[string]string{"Authorization": "Bearer " + testToken}); code != 200 || !strings.HasPrefix(body, "a / ") {
		t.Fatalf("token: %d %q, want 200", code, body)
	}
}

func TestModelsEndpoint(t *testing.T) {
	a, b := replicaServer(t, "a"), replicaServer(t, "b")
	_, gw := newGateway(t, Options{}, Table{Tokens: []string{HashToken(testToken)}, Services: []Service{
		{Name: "llama", Model: &Model{Name: "meta/llama", Format: "openai"}, Replicas: []string{a.URL}},
		{Name: "qwen", Model: &Model{Name: "qwen", Format: "openai"}, Replicas: []string{b.URL}},
		{Name: "tgi", Model: &Model{Name: "old", Format: "tgi"}, Replicas: []string{b.URL}},
		{Name: "web", Replicas: []string{b.URL}},
	}})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	if code, _ := get(t, gw.URL+"/v1/models", nil); code != 401 {
		t.Fatalf("models without a token: %d", code)
	}
	code, body := get(t, gw.URL+"/v1/models", auth)
	var list struct {
		Object string
		Data   []struct{ ID, Object, OwnedBy string }
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("models: %d %q %v", code, body, err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "meta/llama,old,qwen" || list.Object != "list" {
		t.Fatalf("models listed: %q", body)
	}
	if code, body := get(t, gw.URL+"/proxy/models/main/models", auth); code != 200 || !strings.Contains(body, `"qwen"`) {
		t.Fatalf("dstack's models path: %d %q", code, body)
	}
	post := func(path, model string) (int, string) {
		req, _ := http.NewRequest("POST", gw.URL+path, strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/v1/chat/completions", "qwen"); code != 200 || !strings.Contains(body, `"content":"from b"`) || !strings.Contains(body, `"model":"qwen"`) {
		t.Fatalf("chat to qwen: %d %q", code, body)
	}
	if code, body := post("/v1/chat/completions", "meta/llama"); code != 200 || !strings.Contains(body, `"content":"from a"`) {
		t.Fatalf("chat to llama: %d %q", code, body)
	}
	if code, _ := post("/v1/chat/completions", "missing"); code != 404 {
		t.Fatalf("unknown model: %d", code)
	}
	if code, _ := post("/v1/chat/completions", "old"); code != 501 {
		t.Fatalf("tgi model: %d, want 501", code)
	}
}

func TestStreamsArriveUnbuffered(t *testing.T) {
	a := replicaServer(t, "a")
	_, gw := newGateway(t, Options{}, Table{Services: []Service{{Name: "web", Replicas: []string{a.URL}}}})
	resp, err := http.Get(gw.URL + "/proxy/services/main/web/events?hold_ms=3000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	// The replica holds the stream open for 3 s after the first event: a
	// buffering proxy would deliver it only at the end.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("the first event took %s: the stream was buffered", d)
	}
}

func TestWebSocketEcho(t *testing.T) {
	a := replicaServer(t, "a")
	_, gw := newGateway(t, Options{}, Table{Services: []Service{{Name: "web", Replicas: []string{a.URL}}}})
	wsURL := "ws" + strings.TrimPrefix(gw.URL, "http") + "/proxy/services/main/web/ws"
	c, err := websocket.Dial(wsURL, "", gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"hello", "again"} {
		if err := websocket.Message.Send(c, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil || got != msg {
			t.Fatalf("echo: %q %v", got, err)
		}
	}
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestDeadReplicaIsRetried(t *testing.T) {
	a := replicaServer(t, "a")
	dead := deadAddr(t)
	_, gw := newGateway(t, Options{}, Table{Services: []Service{{Name: "web", Replicas: []string{dead, a.URL}}}})
	for i := range 6 {
		code, body := get(t, gw.URL+"/proxy/services/main/web/", nil)
		if code != 200 || !strings.HasPrefix(body, "a ") {
			t.Fatalf("request %d: %d %q: not retried on the live replica", i, code, body)
		}
	}
	// A POST that is not idempotent and never reached the replica
	// (connection refused) is retried too: nothing was sent.
	resp, err := http.Post(gw.URL+"/proxy/services/main/web/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 502 {
		t.Fatalf("post: %d", resp.StatusCode)
	}
}

func TestRoundRobin(t *testing.T) {
	a, b := replicaServer(t, "a"), replicaServer(t, "b")
	_, gw := newGateway(t, Options{}, Table{Services: []Service{{Name: "web", Replicas: []string{a.URL, b.URL}}}})
	seen := map[string]int{}
	for range 10 {
		_, body := get(t, gw.URL+"/proxy/services/main/web/", nil)
		seen[body[:1]]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin: %v", seen)
	}
}

func TestRateLimit(t *testing.T) {
	a := replicaServer(t, "a")
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, gw := newGateway(t, Options{Now: clock}, Table{Services: []Service{{Name: "web", Replicas: []string{a.URL}, RateLimits: []RateLimit{
		{Prefix: "/", RPS: 100},
		{Prefix: "/api", RPS: 1, Burst: 2},
		{Prefix: "/keyed", RPS: 1, Header: "X-User"},
	}}}})
	u := gw.URL + "/proxy/services/main/web"
	var codes []int
	for range 4 {
		c, _ := get(t, u+"/api/x", nil)
		codes = append(codes, c)
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Fatalf("rps 1 burst 2 on /api: %v", codes)
	}
	// The longest prefix applies: / is not limited as tightly.
	if c, _ := get(t, u+"/other", nil); c != 200 {
		t.Fatalf("/other: %d", c)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if c, _ := get(t, u+"/api/x", nil); c != 200 {
		t.Fatalf("a second later: %d", c)
	}
	// Per header value.
	if c, _ := get(t, u+"/keyed", map[string]string{"X-User": "alice"}); c != 200 {
		t.Fatal(c)
	}
	if c, _ := get(t, u+"/keyed", map[string]string{"X-User": "alice"}); c != 429 {
		t.Fatalf("alice twice: %d", c)
	}
	if c, _ := get(t, u+"/keyed", map[string]string{"X-User": "bob"}); c != 200 {
		t.Fatalf("bob has his own bucket: %d", c)
	}
}

func TestScaledToZeroQueuesUntilAReplica(t *testing.T) {
	a := replicaServer(t, "a")
	s, gw := newGateway(t, Options{QueueTimeout: 10 * time.Second}, Table{Services: []Service{{Name: "web"}}})
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(gw.URL + "/proxy/services/main/web/q")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	// The control loop sees the queued request in the stats...
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		if len(st.Services) == 1 && st.Services[0].Queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no queued request in the stats: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ... and starts a replica: the request goes to it.
	if err := s.SetTable(Table{Services: []Service{{Name: "web", Replicas: []string{a.URL}}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "200 a /q ") {
			t.Fatalf("queued request: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request was not sent when a replica came")
	}
	// With no replica within the timeout: 503.
	s2, gw2 := newGateway(t, Options{QueueTimeout: 100 * time.Millisecond}, Table{Services: []Service{{Name: "web"}}})
	_ = s2
	if c, _ := get(t, gw2.URL+"/proxy/services/main/web/", nil); c != 503 {
		t.Fatalf("no replica: %d, want 503", c)
	}
}

func TestStatsAndAdminAPI(t *testing.T) {
	a := replicaServer(t, "a")
	s, gw := newGateway(t, Options{}, Table{})
	admin := httptest.NewServer(s.AdminHandler("admin-secret"))
	t.Cleanup(admin.Close)
	put := func(tok, body string) int {
		req, _ := http.NewRequest("PUT", admin.URL+"/api/routes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := put("wrong", `{"services":[]}`); c != 401 {
		t.Fatalf("admin without its token: %d", c)
	}
	if c := put("admin-secret", `{"services":[{"name":"Bad!"}]}`); c != 400 {
		t.Fatalf("bad table: %d", c)
	}
	if c := put("admin-secret", `{"services":[{"name":"web","replicas":["`+a.URL+`"]}]}`); c != 204 {
		t.Fatalf("table: %d", c)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, _ := get(t, gw.URL+"/proxy/services/main/web/", nil); c == 200 {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	code, body := get(t, admin.URL+"/api/stats", map[string]string{"Authorization": "Bearer admin-secret"})
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Services) != 1 {
		t.Fatalf("stats: %d %q %v", code, body, err)
	}
	ss := st.Services[0]
	if ss.Name != "web" || ss.Project != "main" || ss.Windows["60"].Requests != 12 || ss.Windows["300"].Requests != 12 || ss.RPS != 12.0/60 || ss.InFlight != 0 {
		t.Fatalf("stats: %+v", ss)
	}
	if ss.Windows["60"].RequestTime <= 0 {
		t.Fatalf("request time: %+v", ss)
	}
}

// BenchmarkProxy measures the gateway's own cost per proxied request
// (in-process client, gateway and replica).
func BenchmarkProxy(b *testing.B) {
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from replica\n") }))
	defer rep.Close()
	s := New(Options{})
	if err := s.SetTable(Table{Services: []Service{{Name: "web", Replicas: []string{rep.URL}}}}); err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(s)
	defer front.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := front.URL + "/proxy/services/main/web/"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// A replica that closes its idle connections: the gateway's pooled
// connection is found closed, and the request goes out on a new one.
func TestReplicaClosingIdleConnections(t *testing.T) {
	rep := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	rep.Config.IdleTimeout = 5 * time.Millisecond
	rep.Start()
	defer rep.Close()
	_, gw := newGateway(t, Options{}, Table{Services: []Service{{Name: "web", Replicas: []string{rep.URL}}}})
	for i := range 5 {
		if code, body := get(t, gw.URL+"/proxy/services/main/web/", nil); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// On a gateway that serves TLS, plain HTTP for a service with https is
// redirected, except from this machine; a service with https: false is
// served as it is.
func TestHTTPRedirectsToHTTPS(t *testing.T) {
	a := replicaServer(t, "a")
	s := New(Options{})
	if err := s.SetTable(Table{Domain: "example.test", Services: []Service{
		{Name: "secure", HTTPS: true, Replicas: []string{a.URL}},
		{Name: "plain", Replicas: []string{a.URL}},
	}}); err != nil {
		t.Fatal(err)
	}
	h := s.HTTPRedirecting(8443)
	do := func(host, remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://"+host+"/p?q=1", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("secure.example.test", "203.0.113.7:5000"); rec.Code != 301 || rec.Header().Get("Location") != "https://secure.example.test:8443/p?q=1" {
		t.Fatalf("https service from afar: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do("secure.example.test", "127.0.0.1:5000"); rec.Code != 200 {
		t.Fatalf("https service from this machine: %d", rec.Code)
	}
	if rec := do("plain.example.test", "203.0.113.7:5000"); rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "a /p?q=1") {
		t.Fatalf("https: false service: %d %q", rec.Code, rec.Body.String())
	}
}
