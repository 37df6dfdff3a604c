package s3

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dstackai/dstack-go/state/s3/s3test"
)

// server is a versitygw gateway started for one test (see s3test), with
// helpers that reach past the backend.
type server struct {
	*s3test.Server
}

// startServer starts a gateway with one empty bucket, stopped when the
// test ends.
func startServer(t testing.TB) *server {
	t.Helper()
	return &server{s3test.Start(t)}
}

// backend opens a new client of the server, as another process would.
func (s *server) backend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putRaw stores bytes at key, bypassing the backend.
func (s *server) putRaw(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("putting %s: %v", key, err)
	}
}

// exists reports whether an object is stored at key.
func (s *server) exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := s.Client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
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
