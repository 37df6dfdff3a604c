resource "dstack_gateway" "main" {
  name    = "main"
  backend = "aws"
  region  = "us-east-1"
  domain  = "example.com"
  default = true

  certificate {
    type = "lets-encrypt"
  }
}
