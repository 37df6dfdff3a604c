// Package s3test starts a real S3 server for tests: versitygw, an
// S3-compatible gateway, on a free port of 127.0.0.1 with a posix backend
// in the test's temporary directory and one empty bucket. It is shared by
// the tests of the S3 state backend and by other packages' tests that
// need an S3 backend to talk to.
//
// The gateway binary is looked up on PATH and where
// .ci/install-versitygw.sh puts it; when it is not installed the test
// fails, rather than skips, saying how to install it.
//
// The package builds its own S3 client and does not import state/s3, so
// that package's tests can use it.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region the server runs in and the client signs for.
const Region = "us-east-1"

// Server is a versitygw gateway started for one test.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Access and Secret are the credentials the server accepts.
	Access, Secret string
	// Bucket is the bucket created empty at start.
	Bucket string
	// Client talks to the server directly, past any backend: for putting
	// and inspecting objects behind a backend's back.
	Client *s3.Client
}

// Config returns the settings of an S3 state backend that uses the
// server's bucket.
func (s *Server) Config() map[string]string {
	return map[string]string{
		"bucket":         s.Bucket,
		"endpoint":       s.Endpoint,
		"region":         Region,
		"use_path_style": "true",
		"access_key":     s.Access,
		"secret_key":     s.Secret,
	}
}

// Start starts versitygw on a free port of 127.0.0.1, waits until it
// answers, creates the bucket, and stops the server when the test ends.
// On linux the server is also killed when the test binary dies without
// running its cleanups (a panic, a -timeout).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := versitygw(t)
	s := &Server{Access: "dstacktest", Secret: "dstacktestsecret", Bucket: "dstack-state"}
	root := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken before the server binds it
		addr := freeAddr(t)
		out := &lockedBuffer{}
		cmd := exec.Command(bin,
			"--access", s.Access, "--secret", s.Secret,
			"--port", addr, "--region", Region, "--quiet",
			"posix", root)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s.Endpoint = "http://" + addr
		s.Client = s3.New(s3.Options{
			Region:       Region,
			Credentials:  credentials.NewStaticCredentialsProvider(s.Access, s.Secret, ""),
			BaseEndpoint: aws.String(s.Endpoint),
			UsePathStyle: true,
		})
		if err := s.waitAndCreateBucket(exited); err != nil {
			stop(cmd, exited)
			lastErr = fmt.Errorf("%w; server output:\n%s", err, out.String())
			continue
		}
		t.Cleanup(func() { stop(cmd, exited) })
		return s
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

// versitygw finds the gateway binary: on PATH, or where
// .ci/install-versitygw.sh puts it.
func versitygw(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatalf("versitygw is not installed (not on PATH, not at %s); the S3 backend is tested against a real gateway: run .ci/install-versitygw.sh", p)
	return ""
}

// waitAndCreateBucket creates the bucket as soon as the server answers.
func (s *Server) waitAndCreateBucket(exited <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("versitygw exited: %v", werr)
		case <-ctx.Done():
			return fmt.Errorf("versitygw did not answer within 30s: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stop(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects the server's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
