package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/dstackai/dstack-go/providers"
)

// HostKeyError is a host that offered another key than the one dstack
// or known_hosts trusts for it. It is never retried or ignored.
type HostKeyError struct {
	Addr           string
	Trusted, Shown ssh.PublicKey
	// Source says where the trusted key comes from.
	Source string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("the host key of %s changed: %s has %s, the host now shows %s; refusing to connect "+
		"(if the host was reinstalled on purpose, add its new key to ~/.ssh/known_hosts, e.g. with ssh-keyscan, and apply again)",
		e.Addr, e.Source, ssh.FingerprintSHA256(e.Trusted), ssh.FingerprintSHA256(e.Shown))
}

// hostKeys decides which host keys to trust: known_hosts first (the
// user's word), then the key recorded in state when the host was added
// (trust on first use, enforced ever after), else the key shown now,
// which is then recorded.
type hostKeys struct {
	known ssh.HostKeyCallback // nil without a known_hosts file

	mu       sync.Mutex
	recorded map[string]ssh.PublicKey // host:port → key from state
	seen     map[string]ssh.PublicKey // host:port → key accepted by this process
	// vouched are keys a trusted channel named for a host not yet
	// recorded (a cloud instance's console output): the host must show
	// one of them, which is then recorded.
	vouched map[string]vouchedKeys
}

type vouchedKeys struct {
	keys   []ssh.PublicKey
	source string
}

func newHostKeys(knownHostsFiles []string) (*hostKeys, error) {
	hk := &hostKeys{recorded: map[string]ssh.PublicKey{}, seen: map[string]ssh.PublicKey{}}
	var files []string
	for _, f := range knownHostsFiles {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	if len(files) > 0 {
		cb, err := knownhosts.New(files...)
		if err != nil {
			return nil, fmt.Errorf("reading known_hosts: %w", err)
		}
		hk.known = cb
	}
	return hk, nil
}

// record trusts key for addr (host:port), as state recorded it.
func (hk *hostKeys) record(addr string, key ssh.PublicKey) {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	hk.recorded[addr] = key
}

// callback checks the key a host shows and reports the accepted key to
// accepted.
func (hk *hostKeys) callback(addr string, accepted *ssh.PublicKey) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if hk.known != nil {
			err := hk.known(addr, remote, key)
			var ke *knownhosts.KeyError
			switch {
			case err == nil:
				*accepted = key
				hk.mu.Lock()
				hk.recorded[addr] = key // the user's word replaces an older record
				hk.mu.Unlock()
				return nil
			case errors.As(err, &ke) && len(ke.Want) > 0:
				return &HostKeyError{Addr: addr, Trusted: ke.Want[0].Key, Shown: key, Source: "known_hosts (" + ke.Want[0].Filename + ")"}
			case !errors.As(err, &ke):
				return fmt.Errorf("checking the host key of %s: %w", addr, err)
			}
		}
		hk.mu.Lock()
		defer hk.mu.Unlock()
		if want, ok := hk.recorded[addr]; ok {
			if !bytes.Equal(want.Marshal(), key.Marshal()) {
				return &HostKeyError{Addr: addr, Trusted: want, Shown: key, Source: "dstack's state"}
			}
			*accepted = key
			return nil
		}
		if v, ok := hk.vouched[addr]; ok {
			for _, k := range v.keys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					hk.recorded[addr] = key
					*accepted = key
					return nil
				}
			}
			return &HostKeyError{Addr: addr, Trusted: v.keys[0], Shown: key, Source: v.source}
		}
		if want, ok := hk.seen[addr]; ok && !bytes.Equal(want.Marshal(), key.Marshal()) {
			return &HostKeyError{Addr: addr, Trusted: want, Shown: key, Source: "this dstack process"}
		}
		hk.seen[addr] = key
		*accepted = key
		return nil
	}
}

// Pool keeps one SSH connection per target and hands it out to every
// call: agent requests, log streams, port forwards. A connection that
// stops answering is replaced on the next use.
type Pool struct {
	keys    *hostKeys
	timeout time.Duration

	mu    sync.Mutex
	conns map[string]*conn
}

type conn struct {
	client  *ssh.Client
	hostKey ssh.PublicKey
	checked atomic.Int64  // unix nanoseconds of the last sign of life
	done    chan struct{} // closed when the connection ends
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// NewPool returns a pool that trusts host keys as described on hostKeys,
// reading the known_hosts files given (missing ones are skipped).
func NewPool(knownHostsFiles []string) (*Pool, error) {
	hk, err := newHostKeys(knownHostsFiles)
	if err != nil {
		return nil, err
	}
	return &Pool{keys: hk, timeout: 15 * time.Second, conns: map[string]*conn{}}, nil
}

// TrustKey records the key dstack trusts for addr (host:port).
func (p *Pool) TrustKey(addr string, key ssh.PublicKey) { p.keys.record(addr, key) }

// Vouch trusts addr (host:port) to show one of keys, which source (a
// cloud instance's console output) named; the key shown is then
// recorded. It is for a machine just made: whatever key was trusted for
// the address before (a terminated instance's, whose address the cloud
// gave again) is forgotten.
func (p *Pool) Vouch(addr string, keys []ssh.PublicKey, source string) {
	if len(keys) == 0 {
		return
	}
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	if p.keys.vouched == nil {
		p.keys.vouched = map[string]vouchedKeys{}
	}
	p.keys.vouched[addr] = vouchedKeys{keys: keys, source: source}
	delete(p.keys.recorded, addr)
	delete(p.keys.seen, addr)
}

// keepaliveAfter is how long a connection may go unused before the pool
// checks it answers before handing it out.
const keepaliveAfter = 5 * time.Second

// Client returns a connection to t, dialing it (through its jump) when
// there is none or the one there stopped answering.
func (p *Pool) Client(ctx context.Context, t Target) (*ssh.Client, ssh.PublicKey, error) {
	k := t.key()
	p.mu.Lock()
	c := p.conns[k]
	p.mu.Unlock()
	if c != nil && c.alive() {
		if time.Since(time.Unix(0, c.checked.Load())) < keepaliveAfter || p.ping(ctx, c) {
			return c.client, c.hostKey, nil
		}
		p.drop(k, c)
	}
	// Dialing is not under the lock: a slow host does not hold up others.
	// Two calls racing to dial keep the first connection.
	nc, err := p.dial(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.conns[k]; old != nil && old.alive() {
		nc.client.Close()
		return old.client, old.hostKey, nil
	}
	p.conns[k] = nc
	return nc.client, nc.hostKey, nil
}

// Forget drops t's connection (after a call through it failed), so the
// next call dials again.
func (p *Pool) Forget(t Target) {
	k := t.key()
	p.mu.Lock()
	c := p.conns[k]
	p.mu.Unlock()
	if c != nil {
		p.drop(k, c)
	}
}

func (p *Pool) drop(k string, c *conn) {
	p.mu.Lock()
	if p.conns[k] == c {
		delete(p.conns, k)
	}
	p.mu.Unlock()
	c.client.Close()
}

func (p *Pool) ping(ctx context.Context, c *conn) bool {
	res := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	select {
	case err := <-res:
		if err == nil {
			c.checked.Store(time.Now().UnixNano())
		}
		return err == nil
	case <-time.After(5 * time.Second):
		return false
	case <-ctx.Done():
		return false
	}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		c.client.Close()
		delete(p.conns, k)
	}
	return nil
}

func (p *Pool) dial(ctx context.Context, t Target) (*conn, error) {
	auth, closeAuth, err := authMethods(t.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	defer closeAuth() // ssh-agent is needed for the handshake only
	var raw net.Conn
	if t.Jump != nil {
		jc, _, err := p.Client(ctx, *t.Jump)
		if err != nil {
			return nil, fmt.Errorf("proxy jump %s: %w", t.Jump.Addr(), err)
		}
		raw, err = dialVia(ctx, jc, t.Addr())
		if err != nil {
			p.Forget(*t.Jump)
			return nil, fmt.Errorf("ssh %s: through %s: %w", t.Addr(), t.Jump.Addr(), err)
		}
	} else {
		d := net.Dialer{Timeout: p.timeout, KeepAlive: 30 * time.Second}
		raw, err = d.DialContext(ctx, "tcp", t.Addr())
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", t.Addr(), err)
		}
	}
	var accepted ssh.PublicKey
	cfg := &ssh.ClientConfig{User: t.User, Auth: auth, HostKeyCallback: p.keys.callback(t.Addr(), &accepted), Timeout: p.timeout}
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(newBufferedConn(raw), t.Addr(), cfg)
	stop()
	if err != nil {
		raw.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		err = fmt.Errorf("ssh %s@%s: %w", t.User, t.Addr(), err)
		if strings.Contains(err.Error(), "unable to authenticate") {
			// The host refused every key: the planner gives up rather
			// than retrying.
			return nil, &providers.Error{Code: providers.Auth, Err: err}
		}
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	client := ssh.NewClient(cc, chans, reqs)
	c := &conn{client: client, hostKey: accepted, done: make(chan struct{})}
	c.checked.Store(time.Now().UnixNano())
	go func() {
		_ = client.Wait()
		close(c.done)
	}()
	return c, nil
}

// dialVia opens a TCP connection to addr from the far side of c, giving
// up when ctx ends.
func dialVia(ctx context.Context, c *ssh.Client, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		nc, err := c.Dial("tcp", addr)
		res <- result{nc, err}
	}()
	select {
	case r := <-res:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// authMethods are the key in identityFile (or the usual default keys)
// and the keys of a running ssh-agent.
func authMethods(identityFile string) (_ []ssh.AuthMethod, closeAgent func(), err error) {
	closeAgent = func() {}
	var signers []ssh.Signer
	files := []string{identityFile}
	if identityFile == "" {
		files = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}
	}
	for _, f := range files {
		path := expandHome(f)
		data, err := os.ReadFile(path)
		if err != nil {
			if identityFile != "" {
				return nil, closeAgent, fmt.Errorf("identity_file: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				if identityFile != "" && os.Getenv("SSH_AUTH_SOCK") == "" {
					return nil, closeAgent, fmt.Errorf("identity_file %s is protected by a passphrase: add it to ssh-agent (ssh-add %s)", f, f)
				}
				continue // ssh-agent may hold it
			}
			return nil, closeAgent, fmt.Errorf("identity_file %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	methods := []ssh.AuthMethod{}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if ac, err := net.Dial("unix", sock); err == nil {
			methods = append(methods, ssh.PublicKeysCallback(sshagent.NewClient(ac).Signers))
			closeAgent = func() { ac.Close() }
		}
	}
	if len(methods) == 0 {
		return nil, closeAgent, errors.New("no SSH key: set identity_file, or put a key in ~/.ssh or ssh-agent")
	}
	return methods, closeAgent, nil
}

// run runs a shell command on the host and returns its output; a
// non-zero exit is an error carrying stderr.
func run(ctx context.Context, c *ssh.Client, command string, stdin io.Reader) (string, error) {
	sess, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("opening an SSH session: %w", err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	// POSIX sh runs the scripts, whatever the user's login shell is
	// (fish, csh, ...).
	go func() { done <- sess.Run("sh -c " + shellQuote(command)) }()
	select {
	case err := <-done:
		if err != nil {
			// Only stderr: stdout may hold what a script read (the
			// agent's token) and errors end up in logs.
			if msg := strings.TrimSpace(errb.String()); msg != "" {
				return out.String(), fmt.Errorf("%w: %s", err, lastLines(msg, 5))
			}
			return out.String(), err
		}
		return out.String(), nil
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return out.String(), ctx.Err()
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// bufferedConn reads its connection in large chunks. Under the SSH
// transport (a TCP connection), x/crypto's own 4 KiB reader cost several
// reads per 32 KiB packet; over a tunnel (an SSH channel), every read
// sends the far side a window adjustment, so an HTTP client's 4 KiB reads
// would cost a packet each.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection where the one below can (TCP,
// an SSH channel).
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// shellQuote quotes s as one word for sh (and fish, zsh, bash): in single
// quotes, each single quote ending the quoted part, escaped, and
// starting the next.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
