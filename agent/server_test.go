package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestEveryRouteNeedsTheToken walks the server's own route list, so a new
// route cannot escape the check.
func TestEveryRouteNeedsTheToken(t *testing.T) {
	a := startAgent(t, t.TempDir())
	a.submit(agent.JobSpec{ID: "j1", Commands: []string{"sleep 600"}})
	a.waitRunning("j1")
	routes := a.srv.Routes()
	if len(routes) < 9 {
		t.Fatalf("only %d routes", len(routes))
	}
	auths := []struct{ name, header string }{
		{"none", ""},
		{"wrong token", "Bearer not-the-token"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token with suffix", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"bare token", testToken},
	}
	blob := "a blob"
	sum := sha256.Sum256([]byte(blob))
	blobHash := hex.EncodeToString(sum[:])
	for _, r := range routes {
		path := strings.ReplaceAll(strings.ReplaceAll(r.Path, "{id}", "j1"), "{sha256}", blobHash)
		for _, auth := range auths {
			t.Run(r.Method+" "+r.Path+"/"+auth.name, func(t *testing.T) {
				req, _ := http.NewRequest(r.Method, a.http.URL+path, strings.NewReader(`{"id":"new","commands":["true"]}`))
				if auth.header != "" {
					req.Header.Set("Authorization", auth.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				var body agent.ErrorResponse
				// A HEAD answer has no body, by HTTP's rules.
				if err := json.NewDecoder(resp.Body).Decode(&body); r.Method != "HEAD" && (err != nil || body.Error == "") {
					t.Errorf("401 body is not a JSON error: %v", err)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("no WWW-Authenticate: Bearer header")
				}
			})
		}
	}
	// Nothing above reached a handler: no job was made, none was stopped.
	jobs := a.m.List("")
	if len(jobs) != 1 || jobs[0].State != agent.StateRunning {
		t.Errorf("unauthenticated requests changed the jobs: %+v", jobs)
	}
	// With the token, every route is served (no 401, no 404 for the path):
	// reads first, then stop, then delete.
	order := map[string]int{"PUT": -1, "HEAD": 0, "GET": 0, "POST": 1, "DELETE": 2}
	slices.SortStableFunc(routes, func(x, y agent.Route) int { return order[x.Method] - order[y.Method] })
	for _, r := range routes {
		path := strings.ReplaceAll(strings.ReplaceAll(r.Path, "{id}", "j1"), "{sha256}", blobHash)
		body := ""
		if r.Method == "PUT" {
			body = blob
		}
		if r.Method == "POST" && r.Path == "/jobs" {
			body = `{"id":"j2","commands":["true"]}`
		}
		if r.Path == "/jobs/{id}/exec" {
			body = `{"command":["true"]}`
		}
		req, _ := http.NewRequest(r.Method, a.http.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("%s %s with the token: status %d", r.Method, path, resp.StatusCode)
		}
	}
}

func TestClientReportsRejectedToken(t *testing.T) {
	a := startAgent(t, t.TempDir())
	c, err := client.New(a.http.URL, "wrong", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Health(t.Context())
	var ce *client.Error
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &ce) || ce.StatusCode != 401 {
		t.Fatalf("health with a wrong token: %v", err)
	}
	if !strings.Contains(err.Error(), "agent rejected the token") {
		t.Errorf("error %q does not say the token was rejected", err)
	}
	if _, err := c.Logs(t.Context(), "x", 0, false); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("logs with a wrong token: %v", err)
	}
	h, err := a.c.Health(t.Context())
	if err != nil || h.Status != "ok" || !slices.Equal(h.Runtimes, []string{"host"}) {
		t.Errorf("health = %+v, %v", h, err)
	}
	inv, err := a.c.Inventory(t.Context())
	if err != nil || inv.CPUs < 1 || inv.Arch == "" || !slices.Equal(inv.Runtimes, []string{"host"}) {
		t.Errorf("inventory = %+v, %v", inv, err)
	}
}

func TestBadRequests(t *testing.T) {
	a := startAgent(t, t.TempDir())
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown field", "POST", "/jobs", `{"id":"x","commands":["true"],"gpus_wanted":2}`, 400},
		{"not json", "POST", "/jobs", `id=x`, 400},
		{"empty submit", "POST", "/jobs", ``, 400},
		{"bad since", "GET", "/jobs/x/logs?since=-1", ``, 400},
		{"bad follow", "GET", "/jobs/x/logs?follow=maybe", ``, 400},
		{"unknown job", "GET", "/jobs/nope", ``, 404},
		{"unknown job logs", "GET", "/jobs/nope/logs", ``, 404},
		{"unknown job stop", "POST", "/jobs/nope/stop", ``, 404},
		{"bad stop body", "POST", "/jobs/nope/stop", `{"grace":1}`, 400},
		{"unknown path", "GET", "/nothing", ``, 404},
		{"wrong method", "PUT", "/jobs", ``, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, a.http.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				data, _ := io.ReadAll(resp.Body)
				t.Errorf("status %d (%s), want %d", resp.StatusCode, data, tt.want)
			}
		})
	}
}

// TestOpenAPIMatchesRoutes keeps agent/openapi.yaml and the server's routes
// in step, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI    string                    `yaml:"openapi"`
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `yaml:"securitySchemes"`
		} `yaml:"components"`
		Security []map[string]any `yaml:"security"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	if len(doc.Security) == 0 || doc.Components.SecuritySchemes["bearer"]["scheme"] != "bearer" {
		t.Errorf("no global bearer security in openapi.yaml")
	}
	a := startAgent(t, t.TempDir())
	var inCode, inDoc []string
	for _, r := range a.srv.Routes() {
		inCode = append(inCode, strings.ToLower(r.Method)+" "+r.Path)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			inDoc = append(inDoc, method+" "+path)
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if _, ok := responses["401"]; !ok {
				t.Errorf("%s %s: no 401 response documented", method, path)
			}
		}
	}
	slices.Sort(inCode)
	slices.Sort(inDoc)
	if !slices.Equal(inCode, inDoc) {
		t.Errorf("routes in code:\n  %s\nin openapi.yaml:\n  %s", strings.Join(inCode, "\n  "), strings.Join(inDoc, "\n  "))
	}
}
