package cli

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/state/backends"
)

// TestBackendSDKsAreNotLinked guards how dstack is linked: every command,
// `dstack version` included, pays for the package initialisation of every
// package in the binary, so the SDKs of the remote state backends live in
// their dstack-backend-NAME programs (docs/design.md, "How providers and
// backends are linked").
func TestBackendSDKsAreNotLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/dstackai/dstack-go/cmd/dstack").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	heavy := []string{
		"github.com/aws/",
		"github.com/Azure/",
		"github.com/jackc/pgx",
		"golang.org/x/oauth2/google",
		"cloud.google.com/",
		"github.com/dstackai/dstack-go/state/s3",
		"github.com/dstackai/dstack-go/state/gcs",
		"github.com/dstackai/dstack-go/state/azurerm",
		"github.com/dstackai/dstack-go/state/pg",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if strings.HasPrefix(pkg, h) {
				t.Errorf("cmd/dstack links %s; a backend's SDK belongs in its own program", pkg)
			}
		}
	}
}

// TestBackendNames: dstack knows every backend the registry has, built
// in or in a program of its own.
func TestBackendNames(t *testing.T) {
	if got, want := backendNames(), backends.Names(); !slices.Equal(got, want) {
		t.Fatalf("dstack's backends %v, the registry's %v", got, want)
	}
}
