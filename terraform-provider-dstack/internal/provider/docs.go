package provider

import (
	"fmt"
	"strings"

	"github.com/dstackai/dstack-go/lang"
)

// importable reports whether resources of kind k can be adopted with
// terraform import: fleets and volumes, which outlive the runs using
// them. Runs and gateways are declared anew.
func importable(k lang.Kind) bool { return k == lang.KindFleet || k == lang.KindVolume }

// ImportDoc says how terraform import addresses a resource of this
// type, for its page of the registry docs; empty when it cannot be
// imported.
func (r *resource) ImportDoc() string {
	if !importable(r.kind) {
		return ""
	}
	k, tn := string(r.kind), TypeName(r.kind)
	return strings.TrimSpace(fmt.Sprintf(`
A %[1]s made with the dstack CLI can be adopted. The import ID is the
%[1]s's name (`+"`NAME`"+`) or its dstack address (`+"`%[1]s.NAME`"+`). The
provider reads the %[1]s's record from the dstack CLI's state that the
provider block selects (`+"`state_backend`, `state_config`, `workspace`"+`;
by default the `+"`local`"+` backend's `+"`.dstack`"+` directory, relative to
where terraform runs, and the workspace `+"`default`"+`), keeps a copy in
the resource's private state, and sets the attributes from the
configuration recorded with it. Write the `+"`%[2]s`"+` resource with that
configuration before importing, so that the next plan shows no change.

Importing only copies the record: the dstack state still holds it.
Run `+"`dstack state rm %[1]s.NAME`"+` afterwards (it forgets the %[1]s;
nothing is destroyed), so that only Terraform manages it.`, k, tn))
}

// StateDoc says where the provider keeps what it makes, for the index
// page of the registry docs.
const StateDoc = "## Where the provider keeps what it makes\n\n" +
	"The provider keeps no state of its own: everything is in Terraform's state.\n\n" +
	"- A resource's attributes (its configuration, and the computed `id`, `status`, `price` and\n" +
	"  `provisioned`) are ordinary Terraform state.\n" +
	"- Its dstack record, what `dstack apply` would write into the dstack state for it (the machines,\n" +
	"  jobs or replicas made, with their backend, provider ID, idempotency token, status and secrets\n" +
	"  such as agent tokens and SSH private keys), is the resource's *private state*: Terraform keeps\n" +
	"  it in the same state file (the `private` field of each resource instance) but shows it in no\n" +
	"  plan and no `terraform show`.\n" +
	"  A run also keeps there the records of the fleets it was placed on when it was planned. Each\n" +
	"  plan, apply, refresh and destroy starts from this record: dstack's planner plans the resource\n" +
	"  against a one-resource dstack state built from it, and dstack's executor applies the plan into\n" +
	"  memory, whose result becomes the new record. Keep the Terraform state where secrets may be kept\n" +
	"  (a remote backend with encryption and restricted access). A resource whose private state is\n" +
	"  lost is made anew by the next apply.\n" +
	"- The dstack CLI's state (`state_backend`, `state_config`, `workspace`) is only read, never\n" +
	"  written: by `terraform import` (fleets and volumes) and by the `dstack_fleet` data source for a\n" +
	"  fleet this configuration does not manage.\n" +
	"- With the `local` backend, this machine's host agent runs the jobs; its directory (`agent_dir`,\n" +
	"  default `~/.dstack/agent`) holds the jobs, their logs, the agent's token and its address. The\n" +
	"  dstack CLI uses the same directory, so both see the same jobs.\n"
