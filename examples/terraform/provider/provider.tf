terraform {
  required_providers {
    dstack = {
      source = "dstackai/dstack"
    }
  }
}

# Without backend blocks, resources are made on this machine (the local
# backend). Each cloud backend takes its credentials from the block, or
# from the cloud's environment variables and credential files.
provider "dstack" {
  backend {
    type = "local"
  }
  backend {
    type = "aws" # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials
  }
}
