package inventory

import (
	"reflect"
	"testing"

	"github.com/dstackai/dstack-go/agent"
)

func TestJobGPUs(t *testing.T) {
	usage := []GPUUsage{
		{Index: 0, UUID: "GPU-a", UtilizationPercent: 10, MemoryUsedMB: 100},
		{Index: 1, UUID: "GPU-b", UtilizationPercent: 95, MemoryUsedMB: 70000},
		{Index: 2, UUID: "GPU-c", UtilizationPercent: 0, MemoryUsedMB: 0},
	}
	for _, tc := range []struct {
		gpus []string
		want []agent.GPUMetrics
	}{
		{nil, nil},
		{[]string{"1"}, []agent.GPUMetrics{{UUID: "GPU-b", UtilizationPercent: 95, MemoryUsedMB: 70000}}},
		{[]string{"GPU-c", "0"}, []agent.GPUMetrics{{UUID: "GPU-a", UtilizationPercent: 10, MemoryUsedMB: 100}, {UUID: "GPU-c"}}},
		{[]string{"GPU-zzz"}, nil},
	} {
		if got := JobGPUs(tc.gpus, usage); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("JobGPUs(%v) = %+v, want %+v", tc.gpus, got, tc.want)
		}
	}
}
