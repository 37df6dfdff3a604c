// Package imds reads the EC2 instance metadata service (IMDS) for what
// the agent needs of it: the spot interruption notice, the two-minute
// warning EC2 gives a spot instance before it stops, hibernates or
// terminates it.
//
// It speaks IMDSv2 only: a session token from PUT /latest/api/token,
// then GET /latest/meta-data/spot/instance-action with the token. The
// notice path answers 404 until EC2 decides to interrupt the instance,
// then a JSON document {"action": "terminate", "time": "..."}.
//
// Why not the SDK's feature/ec2/imds client: it links the AWS SDK's core
// (smithy-go, the middleware stack, 31 packages), adding 323 KB to the
// stripped agent binary (8.87 MB to 9.20 MB, measured with Go 1.26), and
// the dstack CLI, which runs the same agent as `dstack agent`, must not
// link github.com/aws/ at all (imports_test.go). The protocol is two
// requests; this package is those two requests and a poll loop.
//
// Where to start: [Client.InstanceAction] asks once; [Watch] polls until
// a notice comes. Tests run against amazon-ec2-metadata-mock, AWS's own
// IMDS simulator (see .ci/install-ec2-metadata-mock.sh).
package imds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is where the metadata service answers on EC2 (its IPv4
// link-local address).
const DefaultEndpoint = "http://169.254.169.254"

// DefaultInterval is how often Watch asks for a notice: AWS advises
// every five seconds, which leaves a job most of its two minutes.
const DefaultInterval = 5 * time.Second

// tokenTTL is the life asked for each session token (IMDS allows up to
// six hours); a token is renewed a minute before it runs out.
const tokenTTL = 6 * time.Hour

// Notice is a spot interruption notice.
type Notice struct {
	// Action is what EC2 will do to the instance: "terminate", "stop"
	// or "hibernate".
	Action string `json:"action"`
	// Time is when it will (UTC).
	Time time.Time `json:"time"`
}

// String reads "spot interruption notice: terminate at 2026-01-02T15:04:05Z".
func (n Notice) String() string {
	return fmt.Sprintf("spot interruption notice: %s at %s", n.Action, n.Time.UTC().Format(time.RFC3339))
}

// Client asks one metadata service. It is safe for concurrent use.
type Client struct {
	endpoint string
	hc       *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

// New returns a client of the metadata service at endpoint (such as
// DefaultEndpoint), using hc (nil: a client with a 2-second timeout:
// the service is on the instance's own link and answers in milliseconds,
// and a hung call must not delay the next poll).
func New(endpoint string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	return &Client{endpoint: strings.TrimRight(endpoint, "/"), hc: hc}
}

// InstanceAction returns the spot interruption notice, and false when
// there is none (the service answers 404: EC2 has not decided to
// interrupt the instance, or it is not a spot instance).
func (c *Client) InstanceAction(ctx context.Context) (Notice, bool, error) {
	for attempt := 0; ; attempt++ {
		token, err := c.sessionToken(ctx)
		if err != nil {
			return Notice{}, false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"/latest/meta-data/spot/instance-action", nil)
		if err != nil {
			return Notice{}, false, fmt.Errorf("imds: %w", err)
		}
		req.Header.Set("X-aws-ec2-metadata-token", token)
		resp, err := c.hc.Do(req)
		if err != nil {
			return Notice{}, false, fmt.Errorf("imds: get spot/instance-action: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case err != nil:
			return Notice{}, false, fmt.Errorf("imds: read spot/instance-action: %w", err)
		case resp.StatusCode == http.StatusNotFound:
			return Notice{}, false, nil
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			// The token expired early (the service restarted): once more
			// with a new one.
			c.dropToken(token)
			continue
		case resp.StatusCode != http.StatusOK:
			return Notice{}, false, fmt.Errorf("imds: get spot/instance-action: %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		var n Notice
		if err := json.Unmarshal(body, &n); err != nil {
			return Notice{}, false, fmt.Errorf("imds: decode spot/instance-action %q: %w", body, err)
		}
		if n.Action == "" || n.Time.IsZero() {
			return Notice{}, false, fmt.Errorf("imds: spot/instance-action %q lacks action or time", body)
		}
		return n, true, nil
	}
}

// sessionToken returns a live session token, asking for a new one when
// the last is about to run out.
func (c *Client) sessionToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.expires) > time.Minute {
		return c.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.endpoint+"/latest/api/token", nil)
	if err != nil {
		return "", fmt.Errorf("imds: %w", err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(int(tokenTTL/time.Second)))
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("imds: get a session token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("imds: read the session token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("imds: get a session token: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	token := strings.TrimSpace(string(body))
	if token == "" {
		return "", errors.New("imds: get a session token: empty answer")
	}
	ttl := tokenTTL
	if s, err := strconv.Atoi(resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")); err == nil && s > 0 {
		ttl = time.Duration(s) * time.Second
	}
	c.token, c.expires = token, time.Now().Add(ttl)
	return token, nil
}

// dropToken forgets token, unless another call has replaced it already.
func (c *Client) dropToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// Watch asks c for a spot interruption notice every interval (0:
// DefaultInterval) until one comes, and returns it; or until ctx ends,
// and returns ctx's error. Failures to ask are logged (the first one,
// then one a minute while they go on) and do not end the watch: the
// service may come up after the agent.
func Watch(ctx context.Context, c *Client, interval time.Duration, log *slog.Logger) (Notice, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastWarned time.Time
	failing := false
	for {
		n, ok, err := c.InstanceAction(ctx)
		switch {
		case ctx.Err() != nil:
			return Notice{}, ctx.Err()
		case err != nil:
			if time.Since(lastWarned) >= time.Minute {
				log.Warn("cannot read the spot interruption notice", "err", err)
				lastWarned = time.Now()
			}
			failing = true
		case ok:
			return n, nil
		case failing:
			log.Info("the metadata service answers again")
			failing, lastWarned = false, time.Time{}
		}
		select {
		case <-ctx.Done():
			return Notice{}, ctx.Err()
		case <-t.C:
		}
	}
}
