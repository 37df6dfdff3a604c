# A volume made with the dstack CLI, by its name (or its address, volume.data):
# its record moves from the CLI's state into the provider's store
terraform import dstack_volume.data data
