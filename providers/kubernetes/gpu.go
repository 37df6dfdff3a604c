package kubernetes

import (
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
)

// Node labels the GPU model is read from, as NVIDIA's GPU feature
// discovery and AMD's node labeller set them.
const (
	LabelNVIDIAProduct = "nvidia.com/gpu.product"
	LabelNVIDIAMemory  = "nvidia.com/gpu.memory" // MiB of one GPU
	LabelAMDProduct    = "amd.com/gpu.product-name"
	LabelAMDDeviceID   = "amd.com/gpu.device-id"
)

// Extended resources that count GPUs.
const (
	ResourceNVIDIAGPU = "nvidia.com/gpu"
	ResourceAMDGPU    = "amd.com/gpu"
)

// GPUModel is dstack's name of the GPU a product label names
// ("NVIDIA-H100-80GB-HBM3" is H100, "Tesla-T4" T4,
// "AMD_Instinct_MI300X" MI300X): the longest known name among the
// label's words, or the label itself when none is known.
func GPUModel(product string) string {
	words := strings.FieldsFunc(product, func(r rune) bool { return r == '-' || r == '_' || r == ' ' || r == '.' })
	best := ""
	for _, w := range words {
		if resources.KnownGPU(w) && len(w) > len(best) {
			best = w
		}
	}
	if best == "" {
		return product
	}
	return strings.ToUpper(best)
}
