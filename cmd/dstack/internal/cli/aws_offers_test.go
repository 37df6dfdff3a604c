package cli

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/providers/aws/awstest"
)

// newAWSOffersProject is a project with the aws backend configured, its
// EC2 and Price List API the fake (no machines: nothing is launched), and
// the real dstack-provider-aws on PATH.
func newAWSOffersProject(t *testing.T) (*sshProject, *awstest.Fake, string) {
	t.Helper()
	f := awstest.New(awstest.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "dstack-provider-aws"), "github.com/dstackai/dstack-go/cmd/dstack-provider-aws")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dstack-provider-aws: %v\n%s", err, out)
	}
	p := newSSHProject(t, nil)
	home := filepath.Join(p.dir, "home")
	backends := "backends:\n  - type: aws\n    regions: [us-east-1]\n    creds:\n      type: access_key\n" +
		"      access_key: AKIAFAKEFAKEFAKE0001\n      secret_key: fake-secret-key\n"
	if err := os.MkdirAll(filepath.Join(home, ".dstack"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".dstack", "backends.yml"), []byte(backends), 0o600); err != nil {
		t.Fatal(err)
	}
	p.env = append(withoutAWS(p.env), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ENDPOINT_URL_EC2="+srv.URL, "AWS_ENDPOINT_URL_PRICING="+srv.URL, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "no-aws-credentials"))
	return p, f, home
}

// TestAWSAccountOffers: `dstack offer --backend aws` and `dstack plan`
// list the offers of the account (the fake's instance types, zones, spot
// and on-demand prices, not the catalog's), say how old they are, and
// read them once an hour (the cache); when the account cannot be read,
// the catalog's offers stand in.
func TestAWSAccountOffers(t *testing.T) {
	p, f, home := newAWSOffersProject(t)
	f.SetTypeZones("us-east-1", "g6.xlarge", "us-east-1b")
	f.SetOnDemandPrice("us-east-1", "g6.xlarge", 0.9876)
	f.SetSpotPrice("us-east-1b", "g6.xlarge", 0.1234)

	out := p.must(0, "offer", "--backend", "aws", "--gpu", "L4:1", "-n", "0")
	for _, want := range []string{
		`(?m)^aws +us-east-1b +g6\.xlarge +1xL4 \(24GB\) +4 +16GB +no +0\.99$`,
		`(?m)^aws +us-east-1b +g6\.xlarge +1xL4 \(24GB\) +4 +16GB +yes +0\.12$`,
		`Offers of aws were read from the account just now\.`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("offer output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "us-east-1a  g6.xlarge") || strings.Contains(out, "0.80") {
		t.Errorf("offer output shows g6.xlarge where the account has none, or the catalog's price:\n%s", out)
	}
	reads := len(f.Calls())
	if reads == 0 {
		t.Fatal("the fake was never asked")
	}

	// From the cache now: no call, the same offers, in JSON with their time.
	out = p.must(0, "offer", "--backend", "aws", "--gpu", "L4:1", "--spot", "-json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("offer -json: %v\n%s", err, out)
	}
	if len(list) == 0 || list[0]["zone"] != "us-east-1b" || list[0]["price_per_hour"] != 0.1234 || list[0]["priced_at"] == nil {
		t.Errorf("offer -json: %s", out)
	}
	p.write("fleet.dstack.yml", "type: fleet\nname: gpus\nnodes: 1\nbackends: [aws]\nspot_policy: spot\nresources:\n  gpu: L4\n")
	plan := p.must(0, "plan", "-f", "fleet.dstack.yml")
	if !strings.Contains(plan, "aws us-east-1b g6.xlarge") || !strings.Contains(plan, "$0.12/h") ||
		!regexp.MustCompile(`Offers of aws were read from the account (just now|[0-9]+m ago)\.`).MatchString(plan) {
		t.Errorf("plan does not use the account's offers, or does not say how old they are:\n%s", plan)
	}
	if n := len(f.Calls()); n != reads {
		t.Errorf("%d more calls to the fake within the cache's hour", n-reads)
	}

	// The account cannot be read (and nothing is cached): the catalog's.
	if err := os.RemoveAll(filepath.Join(home, ".dstack", "cache", "aws")); err != nil {
		t.Fatal(err)
	}
	f.Inject("DescribeInstanceTypes", "AuthFailure", 1)
	out = p.must(0, "offer", "--backend", "aws", "--gpu", "L4:1", "-n", "0")
	if !regexp.MustCompile(`(?m)^aws +us-east-1 +g6\.xlarge .* no +0\.80$`).MatchString(out) || strings.Contains(out, "read from the account") ||
		!strings.Contains(out, "Offers of aws are the catalog's: the account's could not be read") {
		t.Errorf("without the account, offer does not fall back to the catalog:\n%s", out)
	}
}
