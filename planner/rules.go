package planner

import (
	"slices"

	"github.com/dstackai/dstack-go/lang"
)

// fieldRule says what a change to a field does.
type fieldRule int

const (
	ruleReplace fieldRule = iota // the default: safe, and what a new image or new resources need
	ruleInPlace                  // recorded, applied by dstack's own policies
	ruleScale                    // changes the number of instances
)

// runPolicy are the fields of every run that dstack applies as policy,
// without touching the container.
var runPolicy = []string{"tags", "priority", "retry", "max_duration", "stop_duration", "utilization_policy",
	"schedule", "idle_duration", "max_price", "termination_idle_time", "termination_policy", "creation_policy"}

// inPlace lists, per kind, the fields that change in place. Every other
// field forces a replacement (for a service, a rolling one: new replicas
// first).
var inPlace = map[lang.Kind][]string{
	lang.KindFleet: {"tags", "idle_duration", "retry", "max_price", "termination_idle_time", "termination_policy", "reservation"},
	lang.KindService: append(slices.Clone(runPolicy), "auth", "rate_limits", "strip_prefix", "model", "https",
		"probes", "scaling", "gateway"),
	lang.KindTask:           runPolicy,
	lang.KindDevEnvironment: append(slices.Clone(runPolicy), "inactivity_duration", "ide", "version"),
	lang.KindVolume:         {"tags", "auto_cleanup_duration"},
	lang.KindGateway:        {"tags", "default", "router"},
}

// scaleFields are the fields that set how many instances there are.
var scaleFields = map[lang.Kind]string{
	lang.KindFleet:   "nodes",
	lang.KindService: "replicas",
}

func rule(k lang.Kind, field string) fieldRule {
	if scaleFields[k] == field {
		return ruleScale
	}
	if slices.Contains(inPlace[k], field) {
		return ruleInPlace
	}
	return ruleReplace
}

// ForcesReplacement reports whether a change to the top-level field of
// spec replaces the resource (what the Terraform provider marks with
// RequiresReplace when a value is known only after apply). An SSH fleet
// changes host by host (ssh_config) or in place (every other field).
func ForcesReplacement(spec lang.Spec, field string) bool {
	if f, ok := spec.(*lang.Fleet); ok && f.SSHConfig != nil {
		return false
	}
	return rule(spec.Kind(), field) == ruleReplace
}
