# A fleet of one machine: this one, through the local backend.
resource "dstack_fleet" "workstation" {
  name     = "workstation"
  nodes    = "1"
  backends = ["local"]
  tags     = { team = "ml" } # changes in place

  resources {
    cpu    = "2.."
    memory = "8GB.."
    disk   = "50GB.."
  }
}

# A cloud fleet that scales between 0 and 4 nodes of 8 H100s.
resource "dstack_fleet" "trainers" {
  name      = "trainers"
  nodes     = "0..4"
  placement = "cluster"
  backends  = ["aws", "gcp"]

  resources {
    gpu = "H100:8"
  }

  retry {
    on_events = ["no-capacity"]
    duration  = "1h"
  }
}
