# A fleet made with the dstack CLI, by its name (or its address, fleet.trainers)
terraform import dstack_fleet.trainers trainers

# Then forget it in the dstack state, so that only Terraform manages it
dstack state rm fleet.trainers
