package interp

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang"
)

// LinkVolumes adds the dependency edges lang's Link cannot see: a run
// mounting `data-${{ dstack.node_rank }}` needs data-0, data-1, ... (one
// per job of the run) where the configuration declares them, so apply
// makes those volumes before the jobs that mount them.
func LinkVolumes(cfg *lang.Config) {
	for _, r := range cfg.Sorted() {
		rc := runConfig(r.Spec)
		if rc == nil {
			continue
		}
		jobs := 1
		if t, ok := r.Spec.(*lang.Task); ok && t.Nodes != nil && *t.Nodes > 1 {
			jobs = *t.Nodes
		}
		added := false
		for i, m := range rc.Volumes {
			for _, name := range m.Name {
				if !strings.Contains(name, opening) {
					continue
				}
				for rank := range jobs {
					n := strconv.Itoa(rank)
					got, missing, err := Expand(name, func(ref Ref) (string, bool) {
						if ref.Namespace == NSDstack && (ref.Name == "node_rank" || ref.Name == "job_num") {
							return n, true
						}
						return "", false
					})
					if err != nil || len(missing) > 0 {
						break // Check reports it
					}
					to := lang.Address{Kind: lang.KindVolume, Name: got}
					if _, ok := cfg.Resources[to]; !ok || to == r.Address {
						continue
					}
					r.DependsOn = append(r.DependsOn, lang.Dependency{To: to, Range: FieldRange(r, fmt.Sprintf("volumes[%d]", i)), Reason: "volumes"})
					added = true
				}
			}
		}
		if !added {
			continue
		}
		deps := r.DependsOn
		sort.SliceStable(deps, func(i, j int) bool {
			if deps[i].To != deps[j].To {
				return deps[i].To.Less(deps[j].To)
			}
			a, b := deps[i].Range, deps[j].Range
			if a.Filename != b.Filename {
				return a.Filename < b.Filename
			}
			return a.Start.Byte < b.Start.Byte
		})
		r.DependsOn = deps[:0:0]
		for i, d := range deps {
			if i > 0 && deps[i-1].To == d.To {
				continue
			}
			r.DependsOn = append(r.DependsOn, d)
		}
	}
}
