package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dstackai/dstack-go/state/backends"
	"github.com/dstackai/dstack-go/state/s3/s3test"
)

// TestS3BackendRunsInItsOwnProgram: with the s3 backend, dstack runs the
// real dstack-backend-s3 (built here and found on PATH) against a real
// S3 server (versitygw): init, a new workspace and its list go through
// that program, and the state object lands in the bucket.
func TestS3BackendRunsInItsOwnProgram(t *testing.T) {
	srv := s3test.Start(t)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "dstack-backend-s3"), "github.com/dstackai/dstack-go/cmd/dstack-backend-s3").CombinedOutput(); err != nil {
		t.Fatalf("building dstack-backend-s3: %v\n%s", err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Chdir(t.TempDir())
	if err := os.WriteFile("main.dstack.hcl", []byte("dstack {\n  backend \"s3\" {\n    key = \"team/state.json\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"init"}
	for k, v := range srv.Config() {
		args = append(args, "-backend-config", k+"="+v)
	}
	if code, out, errs := run(t, args...); code != ExitOK {
		t.Fatalf("dstack init: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := run(t, "workspace", "new", "ci"); code != ExitOK {
		t.Fatalf("dstack workspace new ci: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := run(t, "workspace", "list")
	if code != ExitOK || !strings.Contains(out, "* ci") {
		t.Fatalf("dstack workspace list: exit %d, want ci selected\n%s%s", code, out, errs)
	}
	objs, err := srv.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if !slices.Contains(keys, "env:/ci/team/state.json") {
		t.Fatalf("objects in the bucket: %v, want the ci workspace's state env:/ci/team/state.json", keys)
	}
}

// TestBackendNames: dstack knows every backend the registry has, built
// in or in a program of its own.
func TestBackendNames(t *testing.T) {
	if got, want := backendNames(), backends.Names(); !slices.Equal(got, want) {
		t.Fatalf("dstack's backends %v, the registry's %v", got, want)
	}
}
