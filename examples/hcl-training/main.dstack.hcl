# A fleet, a volume and a training task wired together with references.

variable "gpu" {
  type        = string
  default     = "H100:8"
  description = "GPU spec for every node"
}

variable "nodes" {
  type    = number
  default = 2

  validation {
    condition     = var.nodes >= 1 && var.nodes <= 16
    error_message = "nodes must be between 1 and 16."
  }
}

locals {
  project = "llama-pretrain"
  tags = {
    project = local.project
    owner   = "ml-platform"
  }
}

fleet "trainers" {
  nodes     = var.nodes
  placement = "cluster"
  backends  = ["aws"]
  resources {
    gpu  = var.gpu
    disk = "500GB.."
  }
  tags = local.tags
}

volume "data" {
  backend = "aws"
  region  = "us-east-1"
  size    = "1TB"
  tags    = local.tags
}

task "pretrain" {
  nodes  = var.nodes
  image  = "nvcr.io/nvidia/pytorch:24.07-py3"
  fleets = [fleet.trainers.name]
  commands = [
    "torchrun --nnodes=$DSTACK_NODES_NUM --node-rank=$DSTACK_NODE_RANK --master-addr=$DSTACK_MASTER_NODE_IP train.py",
  ]
  env = {
    PROJECT    = local.project
    WANDB_MODE = "offline"
  }
  volumes = ["${volume.data.name}:/data"]
  resources {
    gpu      = var.gpu
    shm_size = "32GB"
  }
  retry {
    on_events = ["interruption"]
    duration  = "2h"
  }
  tags       = local.tags
  depends_on = [volume.data]
}
