package dstack_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is this module's import path, with a slash.
const module = "github.com/dstackai/dstack-go/"

// pkg is one package of the module as `go list` sees it.
type pkg struct {
	ImportPath string
	Imports    []string // direct
	Deps       []string // transitive
}

// rel is a path relative to the module ("planner/render"); "" for one
// outside it.
func rel(path string) string {
	if s, ok := strings.CutPrefix(path, module); ok {
		return s
	}
	return ""
}

// under reports whether the package path (relative) is dir or below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// listPackages lists every package of the module (tests aside: what they
// import is theirs alone) with its imports and dependencies.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	var all []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	if len(all) < 20 {
		t.Fatalf("go list found %d packages", len(all))
	}
	return all
}

// A rule limits what the packages below From depend on (transitively),
// or, with Direct, import themselves.
type rule struct {
	From   string
	Why    string
	Direct bool
	// Allowed: the packages of ours (relative paths, with their
	// sub-packages) it may depend on beside its own; nil allows all.
	Allowed []string
	// Forbidden: path prefixes (ours relative, others absolute) it must
	// not depend on.
	Forbidden []string
	// Except are packages below From the rule does not apply to, and
	// which are not its own.
	Except []string
}

// rules are the import directions of docs/design.md: `cmd` → `planner` →
// (`lang`, `state`, `providers`, `agent/client`); `lang` and `state`
// import nothing of ours; nothing imports `cmd`.
var rules = []rule{
	{From: "lang", Why: "lang is at the bottom of the graph", Allowed: []string{},
		Forbidden: []string{"github.com/docker/", "github.com/moby/", "github.com/aws/", "cloud.google.com/", "github.com/Azure/"}},
	{From: "state", Why: "state imports nothing of ours", Allowed: []string{}},
	{From: "planner", Why: "the planner reaches providers through their interface, never an implementation",
		Allowed: []string{"lang", "state", "agent", "providers", "providers/offers"},
		Forbidden: []string{"providers/registry", "providers/local", "providers/ssh", "providers/sim", "state/",
			"github.com/docker/", "github.com/moby/"}},
	{From: "providers", Why: "the provider contract names no implementation",
		Allowed: []string{"lang/resources", "providers/offers"},
		// providers/repo packs a run's repos and files (lang's model) for
		// the implementations that run jobs through an agent.
		Except: []string{"providers/local", "providers/ssh", "providers/sim", "providers/aws", "providers/kubernetes", "providers/registry", "providers/providertest", "providers/repo"}},
	{From: "providers/kubernetes", Why: "dstack links the kubernetes provider; client-go runs in dstack-provider-kubernetes (providers/kubernetes/kubeapi)",
		Forbidden: []string{"k8s.io/"}, Except: []string{"providers/kubernetes/kubeapi", "providers/kubernetes/kubetest"}},
	{From: "providers/aws", Why: "dstack links the aws provider; the AWS SDK runs in dstack-provider-aws (providers/aws/ec2api)",
		Forbidden: []string{"github.com/aws/"}, Except: []string{"providers/aws/ec2api"}},
	{From: "providers/providerproc", Why: "the pipe to a provider's program knows no cloud: the standard library and the provider contract's errors",
		Allowed: []string{"lang/resources", "providers", "providers/offers"}},
	{From: "providers/providertest", Why: "the conformance suite tests a provider it is handed",
		Allowed: []string{"lang/resources", "providers", "providers/offers"}},
	{From: "providers", Why: "providers know nothing of the planner, the state or the commands",
		Forbidden: []string{"planner", "state", "cmd", "terraform-provider-dstack"}},
	{From: "agent/client", Why: "the planner and providers import the agent's client; it must not bring the Docker SDK or the runtimes",
		Allowed:   []string{"agent"},
		Forbidden: []string{"agent/", "github.com/docker/", "github.com/moby/", "github.com/containerd/"}},
	{From: "", Why: "nothing imports the commands", Forbidden: []string{"cmd"}, Except: []string{"cmd"}},
	{From: "", Direct: true, Why: "commands get their providers from providers/registry, the one place that wires them",
		Forbidden: []string{"providers/ssh", "providers/sim"},
		Except:    []string{"providers/registry", "providers/ssh", "providers/sim", "providers/aws"}},
	{From: "", Direct: true, Why: "terraform-plugin-go stays behind the Terraform provider's adapter",
		Forbidden: []string{"github.com/hashicorp/terraform-plugin-go"},
		Except:    []string{"terraform-provider-dstack/internal/tfplugin"}},
	{From: "cmd/dstack", Why: "every package dstack links runs its init on every command: the remote state backends' SDKs run in dstack-backend-NAME (docs/design.md)",
		Forbidden: []string{"state/s3", "state/gcs", "state/azurerm", "state/pg", "state/backends",
			"github.com/aws/", "github.com/Azure/", "github.com/jackc/", "cloud.google.com/", "golang.org/x/oauth2/google", "k8s.io/"}},
	{From: "cmd/dstack", Why: "the gateway's ACME and TLS libraries (certmagic, zap) run in dstack-gateway only (docs/design.md)",
		Forbidden: []string{"gateway/acme", "gateway/gatewayd", "github.com/caddyserver/", "go.uber.org/zap", "github.com/mholt/acmez"}},
	{From: "gateway", Why: "the gateway's data plane and its client name no provider, planner or state (gatewayproc, which builds routes from the state, aside)",
		Forbidden: []string{"planner", "providers", "agent", "cmd"}, Except: []string{"gateway/gatewayproc", "gateway/gatewaytest", "gateway/gatewaybench"}},
	{From: "cmd", Why: "the dstack CLI does not link the Terraform plugin library (gRPC)",
		Forbidden: []string{"github.com/hashicorp/terraform-plugin-go", "google.golang.org/grpc"}},
}

// TestImportDirections checks every package of the module against the
// rules.
func TestImportDirections(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, problem := range check(p, rules) {
			t.Error(problem)
		}
	}
}

// check returns how p breaks the rules.
func check(p pkg, rules []rule) []string {
	var out []string
	self := rel(p.ImportPath)
	for _, r := range rules {
		if r.From != "" && !under(self, r.From) || slices.ContainsFunc(r.Except, func(e string) bool { return under(self, e) }) {
			continue
		}
		deps := p.Deps
		verb := "depends on"
		if r.Direct {
			deps, verb = p.Imports, "imports"
		}
		for _, d := range deps {
			ours := rel(d)
			if r.From != "" && ours != "" && under(ours, r.From) && !slices.ContainsFunc(r.Except, func(e string) bool { return under(ours, e) }) {
				continue // its own sub-packages
			}
			bad := slices.ContainsFunc(r.Forbidden, func(f string) bool {
				if strings.Contains(f, ".") {
					return strings.HasPrefix(d, f)
				}
				return ours != "" && (strings.HasSuffix(f, "/") && strings.HasPrefix(ours, f) || under(ours, f))
			})
			if ours != "" && r.Allowed != nil && !slices.ContainsFunc(r.Allowed, func(a string) bool { return under(ours, a) }) {
				bad = true
			}
			if bad {
				out = append(out, fmt.Sprintf("%s %s %s: %s", self, verb, d, r.Why))
			}
		}
	}
	return out
}

// TestRulesCatch: the rules report a planner that imports a provider
// implementation, a state that imports lang, and an agent client that
// pulls in the Docker SDK.
func TestRulesCatch(t *testing.T) {
	for _, tc := range []struct {
		p    pkg
		want string
	}{
		{pkg{ImportPath: module + "planner", Deps: []string{module + "providers", module + "providers/ssh"}}, "planner depends on " + module + "providers/ssh"},
		{pkg{ImportPath: module + "planner/render", Deps: []string{module + "providers/registry"}}, "planner/render depends on " + module + "providers/registry"},
		{pkg{ImportPath: module + "state/s3", Deps: []string{module + "state", module + "lang"}}, "state/s3 depends on " + module + "lang"},
		{pkg{ImportPath: module + "lang/load", Deps: []string{module + "lang", module + "state"}}, "lang/load depends on " + module + "state"},
		{pkg{ImportPath: module + "agent/client", Deps: []string{module + "agent", "github.com/docker/docker/client"}}, "agent/client depends on github.com/docker/docker/client"},
		{pkg{ImportPath: module + "agent/client", Deps: []string{module + "agent", module + "agent/runtime/docker"}}, "agent/client depends on " + module + "agent/runtime/docker"},
		{pkg{ImportPath: module + "terraform-provider-dstack/internal/provider", Imports: []string{module + "providers/ssh"}}, "imports " + module + "providers/ssh"},
		{pkg{ImportPath: module + "providers", Deps: []string{module + "providers/offers", module + "providers/local"}}, "providers depends on " + module + "providers/local"},
	} {
		got := check(tc.p, rules)
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tc.want) }) {
			t.Errorf("%s: got %q, want a problem with %q", tc.p.ImportPath, got, tc.want)
		}
	}
	ok := pkg{ImportPath: module + "planner", Deps: []string{"fmt", module + "lang", module + "lang/resources", module + "state", module + "providers", module + "providers/offers"}}
	if got := check(ok, rules); len(got) > 0 {
		t.Errorf("a planner within bounds: %q", got)
	}
}
