# A fleet made with the dstack CLI (found in its state, .dstack by
# default), for runs declared in Terraform.
data "dstack_fleet" "shared" {
  name = "shared"
}

resource "dstack_task" "eval" {
  name     = "eval"
  commands = ["python eval.py"]
  fleets   = [data.dstack_fleet.shared.name]
}
