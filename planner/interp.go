package planner

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/interp"
)

// Interpolation: a run's configuration keeps its `${{ ... }}` references
// as written through plan and state, so neither ever holds a secret's
// value; each job's configuration is expanded when the job is made (see
// lang/interp), with the job's own numbers (its node rank is its own).

// checkSecrets reports, where each is written, the secrets the runs this
// plan makes or changes reference but the state does not have.
func (m *maker) checkSecrets() {
	for _, c := range m.plan.Changes {
		if c.Action == Delete || c.Action == NoOp || c.Action == Read {
			continue
		}
		res := m.configured(c.Address)
		if res == nil || !res.Address.Kind.IsRun() || len(c.Spec) == 0 {
			continue
		}
		// The change's encoding of the configuration: no second one.
		_, uses, err := interp.CheckSpec(c.Spec, true)
		if err != nil {
			m.problem("%s: %v", c.Address, err)
			continue
		}
		for _, u := range uses {
			if u.Ref.Namespace != interp.NSSecrets || m.in.Prior.HasSecret(u.Ref.Name) {
				continue
			}
			hint := "set it with: dstack secret set " + u.Ref.Name
			if sug := lang.Suggest(u.Ref.Name, m.in.Prior.SecretNames()); sug != "" {
				hint = fmt.Sprintf("did you mean %q? (or set it with: dstack secret set %s)", sug, u.Ref.Name)
			}
			m.problem("%s: %s: %s: secret %q is not set; %s", interp.FieldRange(res, u.Path), c.Address, u.Path, u.Ref.Name, hint)
		}
	}
}

// expandJob returns the configuration a job is made from: its run's,
// with every reference replaced for this job. env is the job's dstack
// environment (jobEnv), which gives the dstack namespace.
func (x *executor) expandJob(spec json.RawMessage, env map[string]string) (json.RawMessage, error) {
	environ := x.opts.Environ
	if environ == nil {
		// What a provider takes a bare env variable from.
		environ = os.LookupEnv
	}
	vars := interp.Vars{Secrets: x.opts.Secrets, Environ: environ, Dstack: map[string]string{
		"node_rank":     env["DSTACK_NODE_RANK"],
		"job_num":       env["DSTACK_NODE_RANK"], // dstack's alias
		"nodes_num":     env["DSTACK_NODES_NUM"],
		"gpus_num":      orZero(env["DSTACK_GPUS_NUM"]),
		"gpus_per_node": orZero(env["DSTACK_GPUS_PER_NODE"]),
	}}
	out, err := interp.ExpandSpec(spec, vars)
	if err != nil {
		return nil, fmt.Errorf("interpolating the configuration: %w", err)
	}
	return out.Spec, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// jobVolumeName is a volume's name as the job of that node rank mounts
// it; a name without references is itself.
func jobVolumeName(name string, rank int) string {
	if !strings.Contains(name, "${{") {
		return name
	}
	r := strconv.Itoa(rank)
	out, missing, err := interp.Expand(name, func(ref interp.Ref) (string, bool) {
		if ref.Namespace == interp.NSDstack && (ref.Name == "node_rank" || ref.Name == "job_num") {
			return r, true
		}
		return "", false
	})
	if err != nil || len(missing) > 0 {
		return name // reported where the configuration is checked
	}
	return out
}
