package interp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The namespaces a reference may name.
const (
	NSSecrets = "secrets"
	NSEnv     = "env"
	NSDstack  = "dstack"
	NSRun     = "run"
)

var namespaces = []string{NSSecrets, NSEnv, NSDstack, NSRun}

// jobNames are the dstack.* names an env value may use; they are the
// job's DSTACK_* variables. volumeNames are those a volume's name may
// use (dstack's: the job's number and its alias).
var (
	jobNames    = []string{"gpus_num", "gpus_per_node", "job_num", "node_rank", "nodes_num"}
	volumeNames = []string{"job_num", "node_rank"}
	runNames    = []string{"args"}
)

// rule is what one string field takes: for each namespace allowed, the
// names it knows (nil: any name, checked elsewhere).
type rule map[string][]string

// ruleFor says what the string at path (in the encoding of a run's
// configuration) takes; envNames are the run's env variables.
func ruleFor(path string, envNames []string) rule {
	top, rest, _ := strings.Cut(path, ".")
	if i := strings.IndexByte(top, '['); i >= 0 {
		top, rest = path[:i], path[i:]
	}
	switch top {
	case "env":
		return rule{NSSecrets: nil, NSEnv: envNames, NSDstack: jobNames}
	case "registry_auth":
		if rest == "username" || rest == "password" {
			return rule{NSSecrets: nil, NSEnv: envNames}
		}
	case "probes":
		// probes[i].url, probes[i].body, probes[i].headers[j].value
		if strings.HasSuffix(rest, "].url") || strings.HasSuffix(rest, "].body") || strings.HasSuffix(rest, "].value") {
			return rule{NSEnv: envNames}
		}
	case "volumes":
		// volumes[i].name (one name) or volumes[i].name[j]: dstack's
		// per-job volume names.
		if strings.HasSuffix(rest, "].name") || strings.Contains(rest, "].name[") {
			return rule{NSDstack: volumeNames}
		}
	case "commands", "init":
		return rule{NSRun: runNames}
	}
	return nil
}

// fieldsTaking lists, for messages, the fields that take a namespace.
var fieldsTaking = map[string]string{
	NSSecrets: "env values and registry_auth",
	NSEnv:     "env values, registry_auth and a service's probes (url, body, header values)",
	NSDstack:  "env values and volume names",
	NSRun:     "commands and init",
}

// leaf is one string of a configuration's encoding, with its path.
type leaf struct {
	path  string
	value string
	set   func(string)
}

// leaves lists the strings of a decoded JSON document in a stable order,
// each with a setter that replaces it in the document.
func leaves(doc any) []leaf {
	var out []leaf
	var walk func(v any, path string, set func(any))
	walk = func(v any, path string, set func(any)) {
		switch x := v.(type) {
		case string:
			out = append(out, leaf{path: path, value: x, set: func(s string) { set(s) }})
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(x[k], p, func(nv any) { x[k] = nv })
			}
		case []any:
			for i := range x {
				walk(x[i], fmt.Sprintf("%s[%d]", path, i), func(nv any) { x[i] = nv })
			}
		}
	}
	walk(doc, "", func(any) {})
	return out
}

func decodeDoc(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// envOf returns the env of a decoded run configuration: the values
// written (nil for a bare variable, taken from dstack's environment).
func envOf(doc map[string]any) map[string]*string {
	m, _ := doc["env"].(map[string]any)
	out := make(map[string]*string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = &s
		} else {
			out[k] = nil
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
