package client

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/agent"
)

// These tests cover what a real agent does not do (a proxy's HTML error,
// a missing header, a base path); the agent's own tests drive the client
// against a real agent.

func TestErrorsCarryStatusAndMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/jobs/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"job missing: job not found"}`)
		case "/base/jobs/proxied":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>502 Bad Gateway</html>")
		case "/base/jobs/empty":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/base/jobs/x/logs":
			w.WriteHeader(http.StatusOK) // no offset header
		default:
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/base/", "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tests := []struct {
		id      string
		status  int
		message string
		is      error
	}{
		{"missing", 404, "job missing: job not found", ErrNotFound},
		{"proxied", 502, "<html>502 Bad Gateway</html>", nil},
		{"empty", 503, "Service Unavailable", nil},
	}
	for _, tt := range tests {
		_, err := c.Get(ctx, tt.id)
		var e *Error
		if !errors.As(err, &e) || e.StatusCode != tt.status || e.Message != tt.message {
			t.Errorf("Get(%s) = %v, want status %d message %q", tt.id, err, tt.status, tt.message)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Get(%s): errors.Is(%v) false", tt.id, tt.is)
		}
		if errors.Is(err, ErrUnauthorized) {
			t.Errorf("Get(%s) reads as unauthorized", tt.id)
		}
	}
	if _, err := c.Logs(ctx, "x", 0, false); err == nil || !strings.Contains(err.Error(), agent.HeaderLogOffset) {
		t.Errorf("logs without the offset header: %v", err)
	}
	bad, _ := New(srv.URL+"/base", "wrong", nil)
	if _, err := bad.List(ctx, ""); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "agent rejected the token") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"127.0.0.1:9480", "ftp://host", "http://[::1"} {
		if _, err := New(u, "t", nil); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
