package docgen_test

import (
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/docgen"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/provider"
)

// TestImportSections: the page of each resource that can be imported
// says how (its ID, where the record is read from, what to do with the
// dstack state afterwards) with its example commands; the others have
// no Import section. The index page says where the provider keeps what
// it makes.
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
		example, isImportable := importable[k]
		if found != isImportable {
			t.Errorf("%s: Import section %v, want %v", k, found, isImportable)
			continue
		}
		if !found {
			continue
		}
		for _, want := range []string{
			"`" + string(k) + ".NAME`",
			"`state_backend`, `state_config`, `workspace`",
			"private state",
			"dstack state rm " + string(k) + ".NAME",
			"```shell\n",
			"terraform import " + provider.TypeName(k) + "." + example + " " + example + "\n",
		} {
			if !strings.Contains(section, want) {
				t.Errorf("%s: the Import section lacks %q:\n%s", k, want, section)
			}
		}
	}
	index := pages["index.md"]
	for _, want := range []string{"## Where the provider keeps what it makes", "*private state*", "`agent_dir`", "only read, never\n  written"} {
		if !strings.Contains(index, want) {
			t.Errorf("index.md lacks %q", want)
		}
	}
	if !strings.HasSuffix(index, "\n") || strings.HasSuffix(index, "\n\n") {
		t.Errorf("index.md should end with exactly one newline")
	}
}
