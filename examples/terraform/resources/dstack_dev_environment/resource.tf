resource "dstack_dev_environment" "ide" {
  name                = "ide"
  ide                 = "vscode"
  python              = "3.12"
  inactivity_duration = "2h"

  resources {
    gpu = "A100:1"
  }
}
