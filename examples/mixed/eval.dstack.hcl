# HCL refers to a fleet declared in YAML beside it.
task "eval" {
  python   = "3.12"
  fleets   = [fleet.l4-pool.name]
  commands = ["python eval.py --suite mmlu"]
  resources {
    gpu = "L4"
  }
  schedule {
    cron = "0 3 * * *"
  }
}
