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
	k, tn := string(r.kind), TypeName(r.kind)
	store := fmt.Sprintf(`
A %[1]s this provider made can be imported again by its name (`+"`NAME`"+`) or
its dstack address (`+"`%[1]s.NAME`"+`), after `+"`terraform state rm`"+` or into
another module address: the provider's store still holds its record
(nothing is made again), and the attributes are set from the configuration
recorded with it. Write the `+"`%[2]s`"+` resource with that configuration
first, so that the next plan shows no change.`, k, tn)
	if !importable(r.kind) {
		return strings.TrimSpace(store)
	}
	return strings.TrimSpace(store + fmt.Sprintf(`

A %[1]s made with the dstack CLI can be adopted the same way. The
provider takes it from the dstack CLI's state that the provider block
selects (`+"`state_backend`, `state_config`, `workspace`"+`; by default the
`+"`local`"+` backend's `+"`.dstack`"+` directory, relative to where terraform
runs, and the workspace `+"`default`"+`) and *moves* its record: under that
state's lock, the record goes into the provider's store and the resource's
private state, and is removed from the CLI's state (a compare-and-swap
write). A warning names the state it came from. From then on Terraform
alone manages the %[1]s: the CLI no longer lists it, and `+"`dstack destroy`"+`
leaves it alone. A %[1]s that runs in the CLI's state depend on is refused
until they are destroyed.`, k))
}

// StateDoc says where the provider keeps what it makes, for the index
// page of the registry docs.
const StateDoc = "## Where the provider keeps what it makes\n\n" +
	"- A resource's attributes (its configuration, and the computed `id`, `status`, `price` and\n" +
	"  `provisioned`) are ordinary Terraform state.\n" +
	"- Its dstack record, what `dstack apply` writes for it (the machines, jobs or replicas made, with\n" +
	"  their backend, provider ID, idempotency token, status and secrets such as agent tokens and SSH\n" +
	"  private keys), is kept in the provider's *store*: a dstack state (`store_backend`,\n" +
	"  `store_config`, `store_workspace`; by default the `local` backend's `.dstack` directory where\n" +
	"  terraform runs, workspace `terraform`) holding every fleet, run, volume and gateway the\n" +
	"  provider manages. Plans place runs and count their capacity against all of it, as `dstack\n" +
	"  plan` does, whichever resources Terraform visits; applies, refreshes and imports change it under\n" +
	"  its lock. `DSTACK_WORKSPACE=terraform dstack state list` (in that directory) shows it.\n" +
	"- Terraform's state keeps a copy of each record in the resource's *private state* (the `private`\n" +
	"  field of each resource instance, shown in no plan and no `terraform show`); a record the store\n" +
	"  lacks (a store lost, or made before it existed) is adopted back from it by the next refresh.\n" +
	"  Keep both where secrets may be kept. A resource removed with `terraform state rm` stays in the\n" +
	"  store (its jobs keep running and keep their capacity) and is adopted when declared again.\n" +
	"- The dstack CLI's state (`state_backend`, `state_config`, `workspace`) is read by the\n" +
	"  `dstack_fleet` data source for a fleet this provider does not manage, and changed by\n" +
	"  `terraform import` of a fleet or volume the CLI made, which moves its record into the store.\n" +
	"- With the `local` backend, this machine's host agent runs the jobs; its directory (`agent_dir`,\n" +
	"  default `~/.dstack/agent`) holds the jobs, their logs, the agent's token and its address. The\n" +
	"  dstack CLI uses the same directory, so both see the same jobs.\n"
