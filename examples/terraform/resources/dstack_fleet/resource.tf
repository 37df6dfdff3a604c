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

# On-prem servers reached over SSH: dstack installs its agent on each.
# The third host is reachable only through the first.
resource "dstack_fleet" "onprem" {
  name = "onprem"

  ssh_config {
    user          = "ubuntu"
    identity_file = "~/.ssh/id_ed25519"
    network       = "10.0.0.0/24"

    hosts {
      hostname = "192.168.1.10"
    }
    hosts {
      hostname = "192.168.1.11"
      blocks   = "4"
    }
    hosts {
      hostname = "10.0.0.12"
      proxy_jump {
        hostname = "192.168.1.10"
        user     = "ubuntu"
      }
    }
  }
}
