// Package gatewayproc finds this machine's gateway (the dstack-gateway
// program, package gatewayd), or starts one, and tells it the routes:
// what the local backend's services need. Like the agent, the gateway
// runs detached from the program that starts it and is found again
// through the files in its directory.
package gatewayproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/internal/detach"
)

// Dir is where this machine's gateway keeps its files:
// $DSTACK_GATEWAY_DIR, else ~/.dstack/gateway.
func Dir(lookup func(string) (string, bool)) string {
	if d, ok := lookup("DSTACK_GATEWAY_DIR"); ok && d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".dstack", "gateway")
}

// Program finds dstack-gateway: beside the running executable, else in
// the directories of path (a PATH value).
func Program(path string) (string, error) {
	const prog = "dstack-gateway"
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), prog)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, prog)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s was found neither beside dstack nor on PATH: services need it (make build puts it in bin/)", prog)
}

// Client speaks to a running gateway.
type Client struct {
	// URL is the public HTTP base URL ("http://127.0.0.1:8090").
	URL string
	// HTTPSAddr is the HTTPS listener's address, "" when it has none.
	HTTPSAddr string
	admin     string
	token     string
	hc        *http.Client
}

// Probe returns a client of the gateway whose files are in dir, if it
// answers within two seconds.
func Probe(ctx context.Context, dir string) (*Client, bool) {
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	pub, adm, tok := read("gateway.addr"), read("admin.addr"), read("admin.token")
	if pub == "" || adm == "" || tok == "" {
		return nil, false
	}
	c := &Client{URL: "http://" + pub, HTTPSAddr: read("https.addr"), admin: "http://" + adm, token: tok, hc: &http.Client{Timeout: 30 * time.Second}}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.do(hctx, "GET", "/api/health", nil, nil); err != nil {
		return nil, false
	}
	return c, true
}

// StartTimeout is how long Start waits for a new gateway to answer.
const StartTimeout = 20 * time.Second

// Start returns a client of the gateway in dir, starting prog with args
// (and -data-dir) in the environment env when none answers. Its output
// goes to dir/gateway.log.
func Start(ctx context.Context, dir, prog string, args, env []string) (*Client, error) {
	if c, ok := Probe(ctx, dir); ok {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the gateway directory: %w", err)
	}
	// Stale files of a gateway that is gone must not be taken for the
	// new one's.
	for _, f := range []string{"gateway.addr", "admin.addr", "https.addr"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	logPath := filepath.Join(dir, "gateway.log")
	cmd := exec.Command(prog, append(append([]string(nil), args...), "-data-dir", dir)...)
	cmd.Env = env
	return detach.Start(ctx, cmd, logPath, "gateway", StartTimeout, func(ctx context.Context) (*Client, bool) { return Probe(ctx, dir) })
}

// Push replaces the gateway's routing table.
func (c *Client) Push(ctx context.Context, t gateway.Table) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "PUT", "/api/routes", b, nil); err != nil {
		return fmt.Errorf("sending the routes to the gateway: %w", err)
	}
	return nil
}

// Stats returns the gateway's per-service statistics.
func (c *Client) Stats(ctx context.Context) (gateway.Stats, error) {
	var st gateway.Stats
	if err := c.do(ctx, "GET", "/api/stats", nil, &st); err != nil {
		return st, fmt.Errorf("reading the gateway's stats: %w", err)
	}
	return st, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.admin+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if e.Detail == "" {
			e.Detail = resp.Status
		}
		return errors.New(e.Detail)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}
