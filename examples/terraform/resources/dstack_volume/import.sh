# A volume made with the dstack CLI, by its name (or its address, volume.data)
terraform import dstack_volume.data data

# Then forget it in the dstack state, so that only Terraform manages it
dstack state rm volume.data
