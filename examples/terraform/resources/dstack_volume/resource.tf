resource "dstack_volume" "data" {
  name    = "data"
  backend = "aws"
  region  = "us-east-1"
  size    = "100GB"
}

# Runs mount it by name.
resource "dstack_task" "prepare" {
  name     = "prepare"
  commands = ["python prepare.py --out /data"]
  volumes  = ["${dstack_volume.data.name}:/data"]
}
