package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// seen is what a replica got and what the client got back.
type seen struct {
	Status     int
	Method     string
	URI        string
	Host       string
	Header     http.Header
	RespHeader http.Header
	Trailer    http.Header
	Body       string
}

// TestPlainPathSendsWhatTheProxyPathSends sends the same requests
// without a body through a gateway on its own transport (the plain path)
// and one on a plain http.Transport (ReverseProxy all the way): the
// replica must see the same request, and the client the same answer,
// hop-by-hop headers, Connection-named headers, forwarded headers,
// escaped paths, queries and trailers included.
func TestPlainPathSendsWhatTheProxyPathSends(t *testing.T) {
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Replica", "yes")
		w.Header()["Keep-Alive"] = []string{"timeout=5"}
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		if r.Method != http.MethodHead {
			_ = json.NewEncoder(w).Encode(seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header})
		}
		w.Header().Set("X-Sum", "42")
	}))
	defer rep.Close()
	table := Table{Services: []Service{{Name: "web", Replicas: []string{rep.URL}}, {Name: "keep", KeepPrefix: true, Replicas: []string{rep.URL}}}}
	plain, front := newGateway(t, Options{}, table)
	if plain.direct == nil {
		t.Fatal("the default gateway has no direct transport")
	}
	_, ref := newGateway(t, Options{Transport: NewTransport()}, table)
	// The same gateway under net/http's own server, without the Front.
	bare := httptest.NewServer(plain)
	defer bare.Close()

	do := func(base, method, path string, hdr http.Header) seen {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr.Clone()
		req.Host = "svc.example"
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var s seen
		if method != http.MethodHead {
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
		s.Status = resp.StatusCode
		s.RespHeader = resp.Header.Clone()
		s.RespHeader.Del("Date")
		s.Trailer = resp.Trailer
		return s
	}
	hdr := http.Header{
		"Connection":      {"X-Secret, keep-alive"},
		"X-Secret":        {"hop"},
		"Keep-Alive":      {"timeout=1"},
		"Te":              {"trailers"},
		"X-Forwarded-For": {"6.6.6.6"},
		"Forwarded":       {"for=6.6.6.6"},
		"X-Real-Ip":       {"6.6.6.6"},
		"Accept":          {"a/b", "c/d"},
		"User-Agent":      {"probe/1"},
		"Authorization":   {"Bearer x"},
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/proxy/services/main/web/a%2Fb/c?q=1&r=%20"},
		{"GET", "/proxy/services/main/keep/x/y"},
		{"DELETE", "/proxy/services/main/web/item/7"},
		{"HEAD", "/proxy/services/main/web/"},
	} {
		got, want := do(front.URL, tc.method, tc.path, hdr), do(ref.URL, tc.method, tc.path, hdr)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s:\nplain path:   %+v\nReverseProxy: %+v", tc.method, tc.path, got, want)
		}
		if b := do(bare.URL, tc.method, tc.path, hdr); !reflect.DeepEqual(got, b) {
			t.Errorf("%s %s:\nthrough the Front: %+v\nnet/http alone:    %+v", tc.method, tc.path, got, b)
		}
		if tc.method != "HEAD" && (got.Header.Get("X-Secret") != "" || got.Header.Get("X-Forwarded-For") != "127.0.0.1" || got.URI == "") {
			t.Errorf("%s %s: the replica saw %+v", tc.method, tc.path, got)
		}
	}
}
