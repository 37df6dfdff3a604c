package docgen_test

import (
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/docgen"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/provider"
)

// TestImportSections: the page of each resource says how to import it
// again from the provider's store; those of fleets and volumes also say
// how one made with the dstack CLI is moved (its ID, the state it is
// moved from, that the CLI no longer manages it) with their example
// commands, which no longer tell to run dstack state rm. The index page
// says where the provider keeps what it makes.
func TestImportSections(t *testing.T) {
	pages, err := docgen.Render("../../../examples/terraform", provider.New(provider.Options{}), docgen.Extra{Index: provider.StateDoc})
	if err != nil {
		t.Fatal(err)
	}
	importable := map[lang.Kind]string{lang.KindFleet: "trainers", lang.KindVolume: "data"}
	for _, k := range lang.Kinds {
		name := strings.TrimPrefix(provider.TypeName(k), "dstack_")
		text, ok := pages["resources/"+name+".md"]
		if !ok {
			t.Fatalf("no page for %s", k)
		}
		_, section, found := strings.Cut(text, "\n## Import\n")
		if !found {
			t.Errorf("%s: no Import section", k)
			continue
		}
		for _, want := range []string{"`" + string(k) + ".NAME`", "`terraform state rm`", "the provider's store still holds its record"} {
			if !strings.Contains(section, want) {
				t.Errorf("%s: the Import section lacks %q:\n%s", k, want, section)
			}
		}
		example, isImportable := importable[k]
		if fromCLI := strings.Contains(section, "made with the dstack CLI"); fromCLI != isImportable {
			t.Errorf("%s: import from the CLI documented %v, want %v", k, fromCLI, isImportable)
		}
		if !isImportable {
			continue
		}
		if strings.Contains(section, "dstack state rm") {
			t.Errorf("%s: the Import section still says to run dstack state rm:\n%s", k, section)
		}
		for _, want := range []string{
			"`state_backend`, `state_config`, `workspace`",
			"private state",
			"*moves* its record",
			"`dstack destroy`\nleaves it alone",
			"```shell\n",
			"terraform import " + provider.TypeName(k) + "." + example + " " + example + "\n",
		} {
			if !strings.Contains(section, want) {
				t.Errorf("%s: the Import section lacks %q:\n%s", k, want, section)
			}
		}
	}
	index := pages["index.md"]
	for _, want := range []string{"## Where the provider keeps what it makes", "*private state*", "`agent_dir`", "changed by\n  `terraform import` of a fleet or volume the CLI made"} {
		if !strings.Contains(index, want) {
			t.Errorf("index.md lacks %q", want)
		}
	}
	if !strings.HasSuffix(index, "\n") || strings.HasSuffix(index, "\n\n") {
		t.Errorf("index.md should end with exactly one newline")
	}
}

// TestDynamicAttributes: an attribute that takes several forms is
// documented as Dynamic, with the forms it takes.
func TestDynamicAttributes(t *testing.T) {
	pages, err := docgen.Render("../../../examples/terraform", provider.New(provider.Options{}), docgen.Extra{Index: provider.StateDoc})
	if err != nil {
		t.Fatal(err)
	}
	for page, want := range map[string]string{
		"resources/fleet.md":   "- `nodes` (Dynamic) ",
		"resources/service.md": "- `replicas` (Dynamic) ",
	} {
		if !strings.Contains(pages[page], want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
}
