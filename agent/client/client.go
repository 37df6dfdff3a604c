// Package client is the planner's side of the host agent's HTTP API: a
// typed call per route. It speaks plain HTTP through the *http.Client it
// is given, so a caller reaches a remote agent by giving it a client whose
// transport dials through SSH.
//
// Errors from the agent are *Error values carrying the HTTP status and
// the agent's message; errors.Is matches ErrUnauthorized (401: the agent
// rejected the token) and ErrNotFound (404).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/agent"
)

// Sentinels matched by errors.Is against an *Error.
var (
	// ErrUnauthorized: the agent rejected the token.
	ErrUnauthorized = errors.New("agent rejected the token")
	// ErrNotFound: the agent has no such job.
	ErrNotFound = errors.New("not found")
)

// Error is an error answer of the agent.
type Error struct {
	Method, Path string
	StatusCode   int
	// Message is the agent's error message.
	Message string
}

func (e *Error) Error() string {
	if e.StatusCode == http.StatusUnauthorized {
		return fmt.Sprintf("%s %s: agent rejected the token (HTTP 401): check the agent's token", e.Method, e.Path)
	}
	return fmt.Sprintf("%s %s: agent answered %d: %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// Is matches ErrUnauthorized and ErrNotFound by status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// Client calls one agent. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the agent at baseURL ("http://127.0.0.1:9480")
// that sends token with every request through hc (http.DefaultClient when
// nil). hc should have no overall Timeout: log streams last as long as
// their job; each call takes its deadline from its context instead.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("agent URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("agent URL %q: want http:// or https://", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: token, hc: hc}, nil
}

// Health checks that the agent answers and accepts the token.
func (c *Client) Health(ctx context.Context) (agent.Health, error) {
	var h agent.Health
	_, err := c.do(ctx, http.MethodGet, "/health", nil, nil, &h)
	return h, err
}

// Inventory reports the agent's host.
func (c *Client) Inventory(ctx context.Context) (agent.Inventory, error) {
	var inv agent.Inventory
	_, err := c.do(ctx, http.MethodGet, "/inventory", nil, nil, &inv)
	return inv, err
}

// Submit submits a job. It is idempotent by spec.ID: created is false
// when the agent already had the job, which it returns as it is.
func (c *Client) Submit(ctx context.Context, spec agent.JobSpec) (job agent.Job, created bool, err error) {
	status, err := c.do(ctx, http.MethodPost, "/jobs", nil, spec, &job)
	return job, status == http.StatusCreated, err
}

// List lists the agent's jobs, oldest first; with runName set, only that
// run's.
func (c *Client) List(ctx context.Context, runName string) ([]agent.Job, error) {
	var q url.Values
	if runName != "" {
		q = url.Values{"run_name": {runName}}
	}
	var jobs []agent.Job
	_, err := c.do(ctx, http.MethodGet, "/jobs", q, nil, &jobs)
	return jobs, err
}

// Get returns a job.
func (c *Client) Get(ctx context.Context, id string) (agent.Job, error) {
	var job agent.Job
	_, err := c.do(ctx, http.MethodGet, jobPath(id), nil, nil, &job)
	return job, err
}

// Stop stops a job and returns it once it has ended (see
// agent.StopRequest for the grace period and abort).
func (c *Client) Stop(ctx context.Context, id string, req agent.StopRequest) (agent.Job, error) {
	var job agent.Job
	_, err := c.do(ctx, http.MethodPost, jobPath(id)+"/stop", nil, req, &job)
	return job, err
}

// Delete stops a job if it runs and removes it with its log.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, jobPath(id), nil, nil, nil)
	return err
}

// Metrics reports a running job's resource use.
func (c *Client) Metrics(ctx context.Context, id string) (agent.Metrics, error) {
	var m agent.Metrics
	_, err := c.do(ctx, http.MethodGet, jobPath(id)+"/metrics", nil, nil, &m)
	return m, err
}

// WaitFor polls a job until done reports true for it, and returns the job
// then, or ctx's error with the job as last seen.
func (c *Client) WaitFor(ctx context.Context, id string, done func(agent.Job) bool) (agent.Job, error) {
	const poll = 50 * time.Millisecond
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		job, err := c.Get(ctx, id)
		if err != nil {
			return job, err
		}
		if done(job) {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("wait for job %s (last %s): %w", id, job.State, ctx.Err())
		case <-t.C:
		}
	}
}

func jobPath(id string) string { return "/jobs/" + url.PathEscape(id) }

// request builds an authenticated request.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do makes a call and decodes the JSON answer into out (when not nil). It
// returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	req, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, responseError(method, path, resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// responseError reads an error answer into an *Error.
func responseError(method, path string, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Method: method, Path: path, StatusCode: resp.StatusCode}
	var body agent.ErrorResponse
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(data))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// LogStream is a job's log as the agent streams it. Offset tracks the log
// offset of the next byte, so that a caller whose stream broke resumes
// with Logs(ctx, id, stream.Offset(), follow).
type LogStream struct {
	body io.ReadCloser
	off  int64
}

// Logs streams a job's log from byte offset since. Without follow the
// stream ends at the end of what the job has written; with follow it ends
// once the job has ended and its log is drained. A stream that ends
// before that (the agent restarted, or its size cap dropped bytes under a
// slow reader) reads as io.EOF too: check the job's state, and resume from
// Offset if it has not ended.
func (c *Client) Logs(ctx context.Context, id string, since int64, follow bool) (*LogStream, error) {
	return c.logs(ctx, id, url.Values{"since": {strconv.FormatInt(since, 10)}}, follow)
}

// LogsSince streams a job's output from the first line written at or
// after t (to within the agent's 200 ms), otherwise as Logs.
func (c *Client) LogsSince(ctx context.Context, id string, t time.Time, follow bool) (*LogStream, error) {
	return c.logs(ctx, id, url.Values{"since_time": {t.UTC().Format(time.RFC3339Nano)}}, follow)
}

func (c *Client) logs(ctx context.Context, id string, q url.Values, follow bool) (*LogStream, error) {
	if follow {
		q.Set("follow", "1")
	}
	path := jobPath(id) + "/logs"
	req, err := c.request(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(http.MethodGet, path, resp)
	}
	off, err := strconv.ParseInt(resp.Header.Get(agent.HeaderLogOffset), 10, 64)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: bad %s header %q", path, agent.HeaderLogOffset, resp.Header.Get(agent.HeaderLogOffset))
	}
	return &LogStream{body: resp.Body, off: off}, nil
}

// Read reads the log.
func (s *LogStream) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	s.off += int64(n)
	return n, err
}

// Offset is the log offset of the next byte Read returns. Right after
// Logs it is where the agent started, which is later than the offset
// asked for when the log's size cap dropped the bytes in between.
func (s *LogStream) Offset() int64 { return s.off }

// Close ends the stream.
func (s *LogStream) Close() error { return s.body.Close() }
