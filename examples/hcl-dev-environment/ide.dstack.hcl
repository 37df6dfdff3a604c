variable "ide" {
  type    = string
  default = "cursor"
}

dev-environment "notebook" {
  ide                 = var.ide
  python              = "3.12"
  init                = ["pip install -r requirements.txt"]
  inactivity_duration = "4h"
  ports               = ["*:8888"]
  resources {
    gpu    = "nvidia:24GB..:1"
    memory = "32GB.."
  }
  spot_policy = "auto"
}
