package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/providers/local/agentproc"
	"github.com/dstackai/dstack-go/providers/registry"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// configSchema is the provider block.
var configSchema = tfplugin.Schema{Block: tfplugin.Block{
	Description: "The dstack provider declares fleets, runs, volumes and gateways through dstack's engine: the same validation, plan rules and executor as `dstack apply`. Without a `backend` block it uses the `local` backend: this machine, running jobs through dstack's host agent: in Docker, in the run's image or dstack's base image, or as host processes when a run sets `runtime = \"host\"`.",
	Attributes: []tfplugin.Attribute{
		{Name: "agent_dir", Type: tfplugin.StringType, Optional: true,
			Description: "The directory of this machine's dstack agent (its jobs, logs, token and address). Default: `$DSTACK_AGENT_DIR`, else `~/.dstack/agent`, the directory the dstack CLI uses, so both see the same jobs."},
		{Name: "state_backend", Type: tfplugin.StringType, Optional: true,
			Description: "Where `terraform import` and the `dstack_fleet` data source find resources made with the dstack CLI: the type of its state backend (`local`, `s3`, `gcs`, `azurerm`, `pg`, `http`). Default: `local`."},
		{Name: "state_config", Type: tfplugin.MapOf(tfplugin.StringType), Optional: true, Sensitive: true,
			Description: "The settings of `state_backend`, as in the CLI's `dstack { backend \"TYPE\" { ... } }` block. Default for `local`: `{ path = \".dstack\" }`."},
		{Name: "workspace", Type: tfplugin.StringType, Optional: true,
			Description: "The dstack workspace whose state import and data sources read. Default: `$DSTACK_WORKSPACE`, else `default`."},
		{Name: "store_backend", Type: tfplugin.StringType, Optional: true,
			Description: "Where the provider keeps the dstack records of everything it manages (its store, which plans place runs and count capacity against): the type of a dstack state backend (`local`, `s3`, `gcs`, `azurerm`, `pg`, `http`). Default: `local`."},
		{Name: "store_config", Type: tfplugin.MapOf(tfplugin.StringType), Optional: true, Sensitive: true,
			Description: "The settings of `store_backend`. Default for `local`: `{ path = \".dstack\" }`, under Terraform's working directory."},
		{Name: "store_workspace", Type: tfplugin.StringType, Optional: true,
			Description: "The workspace of the store. Default: `terraform` (the dstack CLI's own is `default`, so the two never mix). Set it to `terraform.workspace` to keep Terraform workspaces apart."},
	},
	Blocks: []tfplugin.NestedBlock{{Name: "backend", Nesting: tfplugin.ListNesting, Block: tfplugin.Block{
		Description: "A backend resources may be made in. Credentials not given here are taken from each cloud's standard environment variables and credential files.",
		Attributes: []tfplugin.Attribute{
			{Name: "type", Type: tfplugin.StringType, Required: true, Description: "The backend: `local`, `aws`, `gcp`, `azure`, `kubernetes`, `lambda`, `runpod`, ..."},
			{Name: "credentials", Type: tfplugin.MapOf(tfplugin.StringType), Optional: true, Sensitive: true,
				Description: "The backend's credentials (`aws`: `access_key`, `secret_key`; `gcp`: `credentials_file`; API-key clouds: `api_key`). Without them, the cloud's environment variables and credential files are used."},
		},
	}}},
}}

// credentialSource says where a cloud's credentials are found when the
// backend block gives none: any one group of environment variables, or
// any one file (relative to the home directory).
type credentialSource struct {
	env   [][]string
	files []string
}

var credentialSources = map[string]credentialSource{
	"aws":          {env: [][]string{{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, {"AWS_PROFILE"}}, files: []string{".aws/credentials", ".aws/config"}},
	"gcp":          {env: [][]string{{"GOOGLE_APPLICATION_CREDENTIALS"}}, files: []string{".config/gcloud/application_default_credentials.json"}},
	"azure":        {env: [][]string{{"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"}}, files: []string{".azure/azureProfile.json"}},
	"kubernetes":   {env: [][]string{{"KUBECONFIG"}}, files: []string{".kube/config"}},
	"oci":          {env: [][]string{{"OCI_CLI_CONFIG_FILE"}}, files: []string{".oci/config"}},
	"lambda":       {env: [][]string{{"LAMBDA_API_KEY"}}},
	"runpod":       {env: [][]string{{"RUNPOD_API_KEY"}}},
	"vastai":       {env: [][]string{{"VAST_API_KEY"}}, files: []string{".vast_api_key"}},
	"tensordock":   {env: [][]string{{"TENSORDOCK_API_KEY", "TENSORDOCK_API_TOKEN"}}},
	"datacrunch":   {env: [][]string{{"DATACRUNCH_CLIENT_ID", "DATACRUNCH_CLIENT_SECRET"}}},
	"verda":        {env: [][]string{{"VERDA_CLIENT_ID", "VERDA_CLIENT_SECRET"}}},
	"cudo":         {env: [][]string{{"CUDO_API_KEY"}}},
	"nebius":       {env: [][]string{{"NEBIUS_IAM_TOKEN"}}, files: []string{".nebius/config.yaml"}},
	"vultr":        {env: [][]string{{"VULTR_API_KEY"}}},
	"cloudrift":    {env: [][]string{{"CLOUDRIFT_API_KEY"}}},
	"hotaisle":     {env: [][]string{{"HOTAISLE_API_KEY"}}},
	"digitalocean": {env: [][]string{{"DIGITALOCEAN_TOKEN"}}},
	"amddevcloud":  {env: [][]string{{"AMD_DEVELOPER_CLOUD_API_KEY"}}},
	"crusoe":       {env: [][]string{{"CRUSOE_ACCESS_KEY", "CRUSOE_SECRET_KEY"}}},
}

// settings is the provider block, resolved.
type settings struct {
	agentDir    string
	backends    []string          // enabled backends, in the order given
	credentials map[string]string // backend -> where its credentials came from
	// backendConfig are the backend blocks' settings, for the providers
	// that read them (aws: its credentials).
	backendConfig map[string]map[string]any
	stateBackend  string
	stateConfig   map[string]string
	workspace     string
	// simDir is the simulated cloud (DSTACK_SIM_DIR) that serves every
	// backend instead, as it does for the dstack CLI.
	simDir string
	// The provider's store: where it keeps what it manages.
	storeBackend   string
	storeConfig    map[string]string
	storeWorkspace string
}

type environ struct {
	lookup func(string) (string, bool)
	home   string
}

func osEnviron() environ {
	home, _ := os.UserHomeDir()
	return environ{lookup: os.LookupEnv, home: home}
}

// resolve reads the provider block. Problems point at the attribute at
// fault.
func resolve(cfg map[string]any, env environ) (*settings, tfplugin.Diagnostics) {
	var diags tfplugin.Diagnostics
	s := &settings{credentials: map[string]string{}, stateBackend: "local", workspace: "default"}
	s.agentDir = str(cfg["agent_dir"])
	if s.agentDir == "" {
		s.agentDir = agentproc.Dir(env.lookup)
	}
	s.simDir, _ = env.lookup("DSTACK_SIM_DIR")
	if v := str(cfg["state_backend"]); v != "" {
		s.stateBackend = v
	}
	s.stateConfig = strMap(cfg["state_config"])
	if s.stateBackend == "local" && s.stateConfig["path"] == "" {
		if s.stateConfig == nil {
			s.stateConfig = map[string]string{}
		}
		s.stateConfig["path"] = ".dstack"
	}
	s.storeBackend, s.storeConfig, s.storeWorkspace = "local", strMap(cfg["store_config"]), "terraform"
	if v := str(cfg["store_backend"]); v != "" {
		s.storeBackend = v
	}
	if s.storeBackend == "local" && s.storeConfig["path"] == "" {
		if s.storeConfig == nil {
			s.storeConfig = map[string]string{}
		}
		s.storeConfig["path"] = ".dstack"
	}
	if v := str(cfg["store_workspace"]); v != "" {
		s.storeWorkspace = v
	}
	if v := str(cfg["workspace"]); v != "" {
		s.workspace = v
	} else if v, ok := env.lookup("DSTACK_WORKSPACE"); ok && v != "" {
		s.workspace = v
	}
	blocks, _ := cfg["backend"].([]any)
	if len(blocks) == 0 {
		s.backends = []string{local.Backend}
		s.credentials[local.Backend] = "this machine"
		return s, diags
	}
	for i, b := range blocks {
		m, _ := b.(map[string]any)
		typ := str(m["type"])
		path := tfplugin.Path{"backend", i, "type"}
		switch {
		case typ == "":
			continue // unknown during validation
		case !slices.Contains(lang.Backends, typ):
			detail := fmt.Sprintf("Known backends: %s.", strings.Join(lang.Backends, ", "))
			if sug := lang.Suggest(typ, lang.Backends); sug != "" {
				detail = fmt.Sprintf("Did you mean %q? %s", sug, detail)
			}
			diags.Errorf(path, fmt.Sprintf("Unknown backend %q", typ), "%s", detail)
			continue
		case slices.Contains(s.backends, typ):
			diags.Errorf(path, fmt.Sprintf("Duplicate backend %q", typ), "Each backend is configured once.")
			continue
		}
		s.backends = append(s.backends, typ)
		if s.simDir != "" {
			s.credentials[typ] = "none needed: the simulated cloud (DSTACK_SIM_DIR) serves it"
			continue
		}
		if creds := strMap(m["credentials"]); len(creds) > 0 {
			block := map[string]any{"type": "access_key"}
			for k, v := range creds {
				block[k] = v
			}
			if s.backendConfig == nil {
				s.backendConfig = map[string]map[string]any{}
			}
			s.backendConfig[typ] = map[string]any{"creds": block}
		}
		from, err := findCredentials(typ, strMap(m["credentials"]), env)
		if err != nil {
			diags.Errorf(tfplugin.Path{"backend", i, "credentials"}, fmt.Sprintf("No credentials for backend %q", typ), "%v", err)
			continue
		}
		s.credentials[typ] = from
	}
	return s, diags
}

// findCredentials says where a backend's credentials come from: the
// block, the environment, or a credential file.
func findCredentials(backend string, given map[string]string, env environ) (string, error) {
	if len(given) > 0 {
		return "the provider configuration", nil
	}
	src, ok := credentialSources[backend]
	if !ok {
		return "none needed", nil // local, ssh, dstack
	}
	var tried []string
	for _, group := range src.env {
		all := true
		for _, name := range group {
			if v, ok := env.lookup(name); !ok || v == "" {
				all = false
			}
		}
		if all {
			return "environment variables " + strings.Join(group, ", "), nil
		}
		tried = append(tried, strings.Join(group, " and "))
	}
	for _, f := range src.files {
		p := filepath.Join(env.home, f)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, "~/"+f)
	}
	return "", fmt.Errorf("give them in the backend block's credentials, or set %s", strings.Join(tried, ", or "))
}

func str(v any) string { s, _ := v.(string); return s }

func strMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		out[k] = str(e)
	}
	return out
}

// newProviderSet is what the provider makes things with, from the
// registry, as the dstack CLI does: this machine for the local backend,
// SSH fleets' hosts, and the offline catalog for planning the clouds
// configured.
func newProviderSet(s *settings, env environ, agentCommand []string) (*registry.Set, error) {
	return registry.Open(registry.Env{Lookup: env.lookup, Home: env.home, AgentDir: s.agentDir,
		// This binary runs as the agent (`agent`) where the host's
		// platform is this one's.
		AgentCommand: agentCommand, Backends: s.backends, SimDir: s.simDir, BackendConfig: s.backendConfig,
		Hint: "use the local backend, or set DSTACK_SIM_DIR=DIR to use the simulated cloud"})
}
