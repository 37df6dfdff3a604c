resource "dstack_task" "train" {
  name     = "train"
  image    = "python:3.12-slim"
  commands = ["pip install -r requirements.txt", "python train.py"]
  fleets   = [dstack_fleet.workstation.name] # placed on the fleet's machines
  env = {
    EPOCHS = "3"
  }

  resources {
    gpu = "24GB..:1"
  }
}

resource "dstack_fleet" "workstation" {
  name     = "workstation"
  nodes    = "1"
  backends = ["local"]
}
