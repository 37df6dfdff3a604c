package planner

import (
	"encoding/json"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/state"
)

// mountedVolumes are the addresses of the volumes a run's recorded
// configuration mounts. A run's deletes go before theirs even where no
// edge was recorded (a volume applied from other files than the run's):
// a volume still attached to the run's machine cannot be deleted.
func mountedVolumes(r *state.Resource) []string {
	raw, _, err := priorSpec(r)
	if err != nil || raw == nil {
		return nil
	}
	var run struct {
		Volumes []lang.VolumeMount `json:"volumes"`
	}
	if json.Unmarshal(raw, &run) != nil {
		return nil
	}
	var out []string
	for _, m := range run.Volumes {
		for _, n := range m.Name {
			out = append(out, lang.Address{Kind: lang.KindVolume, Name: n}.String())
		}
	}
	return out
}
