package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers/offers"
)

// nodeReasons says, for a run no offer fits, what each node of a cluster
// lacks: the divisible offers (a Kubernetes cluster's nodes) of the
// backends the run allows, "; node NAME: why" each, the first five and a
// count of the rest; "" when there are none.
func nodeReasons(all []offers.Offer, spec resources.Spec, backends []string) string {
	var reasons []string
	for _, o := range all {
		if !o.Divisible || len(backends) > 0 && !slices.ContainsFunc(backends, func(b string) bool { return strings.EqualFold(b, o.Backend) }) {
			continue
		}
		if why := offers.Explain(o, spec); why != "" {
			reasons = append(reasons, fmt.Sprintf("node %s (%s) has free %s", o.InstanceType, o.Backend, why))
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	return "; " + reasonList(reasons, "")
}
