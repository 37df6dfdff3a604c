# The cheapest machines with one 24GB+ GPU, from the configured backends.
data "dstack_offers" "gpu" {
  gpu   = "24GB..:1"
  limit = 5
}

output "cheapest" {
  value = data.dstack_offers.gpu.offers[0]
}
