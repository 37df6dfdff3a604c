package s3

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
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// server is a versitygw gateway started for one test, with a posix
// backend in the test's temporary directory and one empty bucket.
type server struct {
	endpoint, access, secret, bucket string
	// client talks to the server directly, past the backend.
	client *s3.Client
}

// config is the backend configuration that reaches the server.
func (s *server) config() map[string]string {
	return map[string]string{
		"bucket":         s.bucket,
		"endpoint":       s.endpoint,
		"region":         "us-east-1",
		"use_path_style": "true",
		"access_key":     s.access,
		"secret_key":     s.secret,
	}
}

// backend opens a new client of the server, as another process would.
func (s *server) backend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(s.config())
	if err != nil {
		t.Fatal(err)
	}
	return b
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

// startServer starts versitygw on a free port of 127.0.0.1, waits until
// it answers, creates a bucket, and stops the server when the test ends.
func startServer(t testing.TB) *server {
	t.Helper()
	bin := versitygw(t)
	s := &server{access: "dstacktest", secret: "dstacktestsecret", bucket: "dstack-state"}
	root := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken before the server binds it
		addr := freeAddr(t)
		out := &lockedBuffer{}
		cmd := exec.Command(bin,
			"--access", s.access, "--secret", s.secret,
			"--port", addr, "--region", "us-east-1", "--quiet",
			"posix", root)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		s.endpoint = "http://" + addr
		be, err := New(s.config())
		if err != nil {
			t.Fatal(err)
		}
		s.client = be.client
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

// waitAndCreateBucket creates the bucket as soon as the server answers.
func (s *server) waitAndCreateBucket(exited <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)})
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

// putRaw stores bytes at key, bypassing the backend.
func (s *server) putRaw(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("putting %s: %v", key, err)
	}
}

// exists reports whether an object is stored at key.
func (s *server) exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := s.client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if isNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("checking %s: %v", key, err)
	}
	return true
}

// errorCode describes an S3 error for test messages.
func errorCode(err error) string {
	if err == nil {
		return "no error"
	}
	return fmt.Sprintf("HTTP %d: %v", httpStatus(err), err)
}
