package inventory

import (
	"slices"
	"strconv"

	"github.com/dstackai/dstack-go/agent"
)

// JobGPUs picks, from the use of every GPU of the host, that of the GPUs
// a job holds (named by UUID or index, as JobSpec.GPUs names them), in
// the host's order.
func JobGPUs(gpus []string, usage []GPUUsage) []agent.GPUMetrics {
	var out []agent.GPUMetrics
	for _, u := range usage {
		if slices.Contains(gpus, u.UUID) || slices.Contains(gpus, strconv.Itoa(u.Index)) {
			out = append(out, agent.GPUMetrics{UUID: u.UUID, UtilizationPercent: u.UtilizationPercent, MemoryUsedMB: u.MemoryUsedMB})
		}
	}
	return out
}
