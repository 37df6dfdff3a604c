gateway "public" {
  backend = "gcp"
  region  = "europe-west4"
  domain  = "models.example.com"
  default = true
  certificate {
    type = "lets-encrypt"
  }
}

service "mixtral" {
  image    = "ghcr.io/huggingface/text-generation-inference:2.3"
  gateway  = gateway.public.name
  port     = 80
  env      = ["HF_TOKEN", "MODEL_ID=mistralai/Mixtral-8x7B-Instruct-v0.1"]
  commands = ["text-generation-launcher --port 80 --num-shard 2"]
  model {
    name   = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    format = "tgi"
  }
  replicas = "0..2"
  scaling {
    metric = "rps"
    target = 5
  }
  auth = true
  resources {
    gpu = "80GB:2"
  }
}
