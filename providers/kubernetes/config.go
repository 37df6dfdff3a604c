package kubernetes

import (
	"fmt"
	"sort"
)

// Settings say which cluster, and where in it, the backend works. They
// travel to dstack-provider-kubernetes on its pipe only; nothing of them
// is printed or stored.
type Settings struct {
	// Kubeconfig is the kubeconfig file (else $KUBECONFIG, else
	// ~/.kube/config).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// KubeconfigData is a kubeconfig given inline (kubeconfig.data).
	KubeconfigData string `json:"kubeconfig_data,omitempty"`
	// Context is the kubeconfig's context (else its current one).
	Context string `json:"context,omitempty"`
	// Namespace is where pods, secrets and claims are made (else the
	// context's, else "default").
	Namespace string `json:"namespace,omitempty"`
}

// FromConfig reads a backend block in dstack's shape:
//
//	type: kubernetes
//	kubeconfig:
//	  filename: ~/.kube/config   # or data: the kubeconfig itself
//	  context: gpu-cluster       # optional
//	namespace: dstack            # optional
//
// Unknown settings are refused, naming them.
func FromConfig(block map[string]any, expand func(string) string) (Settings, error) {
	var s Settings
	var unknown []string
	for k, v := range block {
		switch k {
		case "type":
		case "namespace":
			str, ok := v.(string)
			if !ok {
				return Settings{}, fmt.Errorf("kubernetes backend: namespace must be a string")
			}
			s.Namespace = str
		case "context":
			str, ok := v.(string)
			if !ok {
				return Settings{}, fmt.Errorf("kubernetes backend: context must be a string")
			}
			s.Context = str
		case "kubeconfig":
			m, ok := v.(map[string]any)
			if !ok {
				return Settings{}, fmt.Errorf("kubernetes backend: kubeconfig must be a mapping (filename or data, and context)")
			}
			for kk, vv := range m {
				str, ok := vv.(string)
				if !ok {
					return Settings{}, fmt.Errorf("kubernetes backend: kubeconfig.%s must be a string", kk)
				}
				switch kk {
				case "filename":
					if expand != nil {
						str = expand(str)
					}
					s.Kubeconfig = str
				case "data":
					s.KubeconfigData = str
				case "context":
					s.Context = str
				default:
					unknown = append(unknown, "kubeconfig."+kk)
				}
			}
			if s.Kubeconfig != "" && s.KubeconfigData != "" {
				return Settings{}, fmt.Errorf("kubernetes backend: kubeconfig takes filename or data, not both")
			}
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Settings{}, fmt.Errorf("kubernetes backend: unknown settings %v (known: kubeconfig.filename, kubeconfig.data, kubeconfig.context, context, namespace)", unknown)
	}
	return s, nil
}

// Region is what the settings call the cluster in offers: the context's
// name, else "kubernetes".
func (s Settings) Region() string {
	if s.Context != "" {
		return s.Context
	}
	return Backend
}
