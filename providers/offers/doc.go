// Package offers is the provider-neutral model of what can be rented: an
// [Offer] is one machine type in one region of one backend, at a price, and
// [Match] picks the offers that fit a resources spec.
//
// # Catalog
//
// [Catalog] reads an offline catalog embedded in the binary (catalog.csv).
// Its prices are public list prices at the time of writing, in USD per
// hour, meant for planning: they are approximate, and providers override
// them with live offers (and live availability) when they can. Every
// catalog offer has Availability "unknown".
//
// The file is CSV with a header row that must read exactly
//
//	backend,region,instance_type,cpus,arch,memory_gb,disk_gb,gpu_vendor,gpu_name,gpu_memory_gb,gpu_count,spot,price_per_hour
//
// and one offer per row:
//
//   - backend: the backend's name ("aws", "gcp", "azure", "lambda", "runpod")
//   - region: the provider's region name ("us-east-1", "us-central1")
//   - instance_type: the provider's machine type ("p5.48xlarge")
//   - cpus: the number of vCPUs, a positive integer
//   - arch: the CPU architecture, x86 or arm
//   - memory_gb: the RAM in gigabytes (binary: 1GB is 1024MB; fractions are
//     allowed as long as they come to whole megabytes)
//   - disk_gb: the largest disk the offer can have, in gigabytes: for
//     clouds with block storage the largest boot volume the backend
//     attaches, for fixed machines their local disk
//   - gpu_vendor: nvidia, amd, google, intel or tenstorrent; empty, with
//     the other gpu columns, for a CPU-only machine
//   - gpu_name: the accelerator's model ("H100", "A10G", "MI300X"); a TPU
//     slice is one accelerator named for the slice type ("v5p-8")
//   - gpu_memory_gb: the memory of one accelerator (of a TPU slice: all of
//     its HBM), in gigabytes
//   - gpu_count: the number of accelerators, a positive integer
//   - spot: true for spot (preemptible, interruptible) capacity, else false
//   - price_per_hour: the price in USD per hour, not negative
//
// Backend, region, instance type and spot together name one row: no two
// rows may share them. [Load] reads other catalogs in the same format;
// its errors are [*LoadError] values naming the line and column.
package offers
