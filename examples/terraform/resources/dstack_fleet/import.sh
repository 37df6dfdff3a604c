# A fleet made with the dstack CLI, by its name (or its address, fleet.trainers):
# its record moves from the CLI's state into the provider's store
terraform import dstack_fleet.trainers trainers
