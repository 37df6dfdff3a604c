# The same task in HCL, with an unknown block.
task "render" {
  commands  = ["train"]
  resources = { "ß" = 1, gpu = "A100:2:4" }
  ports     = ["80:70000"]
  registry_auth {
    username = "u"
    password = "p"
  }
  bogus {
  }
}
