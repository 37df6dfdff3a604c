resource "dstack_service" "llm" {
  name     = "llm"
  image    = "vllm/vllm-openai:latest"
  commands = ["vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000"]
  port     = "8000"
  replicas = "1..4"
  env = {
    HF_TOKEN = var.hf_token
  }

  resources {
    gpu = "24GB..:1"
  }

  scaling {
    metric = "rps"
    target = 10
  }

  model {
    name = "meta-llama/Llama-3.1-8B-Instruct"
  }
}

variable "hf_token" {
  type      = string
  sensitive = true
}
