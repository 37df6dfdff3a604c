package httpstate

import (
	"bytes"
	"context"
	"crypto/md5" // Content-MD5 is what the protocol uses; it detects damage, not tampering
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Extension headers. A server that understands leases says so on its
// responses with LeaseHeader, and reads IntentHeader on lock requests.
// Servers that know neither ignore both, and the client falls back to
// what the plain protocol allows (see the package documentation).
const (
	// LeaseHeader, set to any value on a response, says the server reads
	// the lease in the lock body ("Expires" − "Created"), lets a lease
	// that ran out be taken over, and reads IntentHeader.
	LeaseHeader = "Dstack-Lease"
	// IntentHeader on a lock request asks for something other than taking
	// the lock: "renew" extends the lease of the lock with the body's ID
	// and never takes a free lock; "probe" reports the holder (423 with
	// its lock info) or that there is none (200) and takes nothing.
	IntentHeader = "Dstack-Lock-Intent"
)

// responseHeaderTimeout bounds how long a request waits for a server to
// start answering. Without it, a hung server would hold a lease renewal
// forever, and the holder would never learn that its lease is running
// out. Thirty seconds is far above any healthy answer and well inside
// the default lease of two minutes.
const responseHeaderTimeout = 30 * time.Second

// StatusError is an answer from the server that the protocol does not
// expect for the request.
type StatusError struct {
	// Op is what was being done ("reading state", "locking", ...).
	Op     string
	Method string
	// URL is the address asked, with any password removed.
	URL  string
	Code int
	// Body is the start of what the server said, for the message.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %s %s answered %d %s", e.Op, e.Method, e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	switch e.Code {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += "; check username and password (or DSTACK_HTTP_USERNAME and DSTACK_HTTP_PASSWORD, TF_HTTP_USERNAME and TF_HTTP_PASSWORD)"
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		msg += "; the server may not support this method at this address: check update_method, lock_address, lock_method, unlock_address and unlock_method"
	}
	return msg
}

type request struct {
	op     string
	method string
	url    string
	body   []byte
	header http.Header
}

type response struct {
	status int
	header http.Header
	body   []byte
	// ambiguous says an earlier attempt of the same request may have
	// reached the server and been carried out (it failed on the network
	// or with a 5xx), so this answer may be to a repeat.
	ambiguous bool
}

func (r *response) ok() bool { return r.status >= 200 && r.status < 300 }

// lease reports whether the server announced lease support.
func (r *response) lease() bool { return r.header.Get(LeaseHeader) != "" }

// retryStatus carries a response with a status worth retrying through
// backoff.Retry.
type retryStatus struct{ r *response }

func (e *retryStatus) Error() string { return fmt.Sprintf("server answered %d", e.r.status) }

func newHTTPClient(c *config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Several goroutines of one process (a lease renewing while state is
	// written) talk to the one server; keep their connections.
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	tlsCfg := &tls.Config{
		InsecureSkipVerify: c.skipCertVerification, // only when skip_cert_verification asks for it
		MinVersion:         tls.VersionTLS12,
	}
	if c.caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.caPEM)) {
			return nil, errors.New("http backend: client_ca_certificate_pem holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if c.certPEM != "" {
		cert, err := tls.X509KeyPair([]byte(c.certPEM), []byte(c.keyPEM))
		if err != nil {
			return nil, fmt.Errorf("http backend: client_certificate_pem and client_private_key_pem: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tlsCfg
	return &http.Client{Transport: tr}, nil
}

// do sends a request, retrying network failures, 429 and 5xx answers
// (except 501) up to retry_max times with exponential backoff between
// retry_wait_min and retry_wait_max, as Terraform's client does. The
// last answer is returned whatever its status; callers map statuses.
func (b *Backend) do(ctx context.Context, rq request) (*response, error) {
	ambiguous := false
	attempt := func() (*response, error) {
		req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, bytes.NewReader(rq.body))
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("%s: %w", rq.op, err))
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		if b.cfg.username != "" || b.cfg.password != "" {
			req.SetBasicAuth(b.cfg.username, b.cfg.password)
		}
		res, err := b.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, backoff.Permanent(fmt.Errorf("%s: %w", rq.op, err))
			}
			ambiguous = true
			return nil, fmt.Errorf("%s: %w", rq.op, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			ambiguous = true
			return nil, fmt.Errorf("%s: reading the answer to %s %s: %w", rq.op, rq.method, redact(rq.url), err)
		}
		r := &response{status: res.StatusCode, header: res.Header, body: body, ambiguous: ambiguous}
		if res.StatusCode == http.StatusTooManyRequests || (res.StatusCode >= 500 && res.StatusCode != http.StatusNotImplemented) {
			ambiguous = true
			return r, &retryStatus{r}
		}
		return r, nil
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     b.cfg.retryWaitMin,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         b.cfg.retryWaitMax,
	}
	r, err := backoff.Retry(ctx, attempt,
		backoff.WithBackOff(bo),
		backoff.WithMaxTries(uint(b.cfg.retryMax)+1),
		backoff.WithMaxElapsedTime(0))
	if rs, ok := errors.AsType[*retryStatus](err); ok {
		return rs.r, nil
	}
	return r, err
}

// statusError describes an unexpected answer.
func statusError(rq request, r *response) error {
	body := strings.Join(strings.Fields(string(r.body)), " ")
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return &StatusError{Op: rq.op, Method: rq.method, URL: redact(rq.url), Code: r.status, Body: body}
}

// checkMD5 compares the body with its Content-MD5 header, when there is
// one: Terraform sends it on writes and some servers send it back.
func checkMD5(r *response) error {
	raw := r.header.Get("Content-MD5")
	if raw == "" {
		return nil
	}
	want, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("the server's Content-MD5 %q is not base64", raw)
	}
	got := md5.Sum(r.body)
	if !bytes.Equal(want, got[:]) {
		return errors.New("the state received does not match its Content-MD5: it was damaged on the way; try again")
	}
	return nil
}

func contentMD5(data []byte) string {
	sum := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}
