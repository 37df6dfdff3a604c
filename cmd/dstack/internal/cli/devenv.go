package cli

// Dev environments: the SSH access dstack sets up for them.
//
// A dev environment's container runs an SSH server (agent/sshd) that
// lets in the key of the user who applied it, ~/.dstack/ssh/id_ed25519
// (made on first use). After apply, and on attach, dstack writes a
// `Host RUN` entry for each running dev environment into its own SSH
// config file, ~/.dstack/ssh/config ($DSTACK_SSH_CONFIG overrides the
// path), and prints the IDE link. The user's ~/.ssh/config includes that
// file once (`Include ~/.dstack/ssh/config`; dstack says so when it is
// missing), so that `ssh RUN`, scp, and IDEs' SSH remotes find the run.
//
// How the entry reaches the container: on this machine (the local
// backend) directly, at the loopback port the server is published on; on
// an SSH fleet's host through that host (ProxyJump), with the host key
// the fleet recorded, to the port published on the host's loopback. The
// last hop (the container's own server, whose key is made when it starts)
// is not checked against a known key: it is reached over loopback, or
// inside the checked connection to the fleet's host.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/agent/sshd"
	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
	"github.com/dstackai/dstack-go/state"
)

// userSSHKey returns the user's dstack key (see sshd.UserKey).
func userSSHKey(env Env) (keyPath, authorized string, err error) {
	home, _ := env.Get("HOME")
	if home == "" {
		return "", "", errors.New("HOME is not set: dstack keeps its SSH key in ~/.dstack/ssh")
	}
	return sshd.UserKey(filepath.Join(home, ".dstack", "ssh"))
}

// sshConfigPath is the SSH config file dstack writes: $DSTACK_SSH_CONFIG,
// else ~/.dstack/ssh/config.
func sshConfigPath(env Env) string {
	if p, ok := env.Get("DSTACK_SSH_CONFIG"); ok && p != "" {
		return p
	}
	home, _ := env.Get("HOME")
	return filepath.Join(home, ".dstack", "ssh", "config")
}

// devAccess is how to reach a running dev environment's SSH server.
type devAccess struct {
	name    string // the run's name: the SSH host alias
	hostIP  string // where its port is published (on the job's host)
	port    int    // the published port of the SSH server
	user    string
	workDir string
	ide     string
	jumps   []providers.SSHHop // outermost first; none: this machine
}

// devEnvAccess finds how to reach the dev environment r.
func devEnvAccess(ctx context.Context, set providers.Set, r *state.Resource) (*devAccess, error) {
	b, err := json.Marshal(r.Attributes[planner.AttrSpec])
	if err != nil {
		return nil, fmt.Errorf("reading the recorded configuration of %s: %w", r.Address, err)
	}
	spec, err := lang.DecodeSpec(b)
	if err != nil {
		return nil, fmt.Errorf("reading the recorded configuration of %s: %w", r.Address, err)
	}
	dev, ok := spec.(*lang.DevEnvironment)
	if !ok {
		return nil, fmt.Errorf("%s is not a dev environment", r.Address)
	}
	r = planner.WithoutAbandoned(r)
	if r == nil || len(r.Instances) == 0 {
		return nil, fmt.Errorf("%s has no job", r.Address)
	}
	in := master(r)
	p, err := set.For(in.Provider)
	if err != nil {
		return nil, err
	}
	objs, err := p.Describe(ctx, []string{in.Token})
	if err != nil {
		return nil, err
	}
	o, ok := objs[in.Token]
	if !ok || !o.Live() || o.Status == providers.StatusDone {
		return nil, fmt.Errorf("%s is not running", r.Address)
	}
	a := &devAccess{name: strings.TrimPrefix(r.Address, string(lang.KindDevEnvironment)+"."), user: dev.User, ide: dev.IDE, workDir: dev.WorkingDir}
	for _, pair := range strings.Split(o.Attributes[providers.AttrPorts], ",") {
		h, c, _ := strings.Cut(pair, ":")
		if c == strconv.Itoa(local.SSHPort) {
			a.port, _ = strconv.Atoi(h)
		}
	}
	if a.port == 0 {
		if dev.Image == "" {
			return nil, fmt.Errorf("%s runs on its host without a container (it names no image), so it has no SSH server of its own: connect to the host itself, or give it an image", r.Address)
		}
		return nil, fmt.Errorf("%s publishes no SSH server (it was started by a dstack without one: apply it again)", r.Address)
	}
	a.hostIP = "127.0.0.1"
	if _, tunnel := p.(providers.PortDialer); tunnel {
		j, ok := p.(providers.SSHJumper)
		if !ok {
			return nil, fmt.Errorf("backend %s does not say how its hosts are reached over SSH", in.Provider)
		}
		if a.jumps, err = j.SSHJumps(in.ProviderID); err != nil {
			return nil, err
		}
	} else if ip := o.Attributes[providers.AttrIP]; ip != "" {
		a.hostIP = ip
	}
	if a.workDir == "" || !path.IsAbs(a.workDir) {
		a.workDir = jobWorkDir(ctx, p, in.ProviderID, a.workDir)
	}
	return a, nil
}

// jobWorkDir asks the job where it runs (the image's working directory
// when the configuration sets none); "/" when it cannot tell.
func jobWorkDir(ctx context.Context, p providers.Provider, id, fallback string) string {
	ex, ok := p.(providers.Execer)
	if !ok {
		return nonEmpty(fallback, "/")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	code, err := ex.Exec(ctx, id, []string{"pwd"}, false, strings.NewReader(""), &out)
	if wd := strings.TrimSpace(out.String()); err == nil && code == 0 && path.IsAbs(wd) {
		return wd
	}
	return nonEmpty(fallback, "/")
}

// sshBlock is the config entries of one dev environment: hosts for its
// jumps, then `Host NAME`.
func (a *devAccess) sshBlock(keyPath, knownHosts string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# >>> dstack dev-environment %s (written by dstack apply and dstack attach)\n", a.name)
	prev := ""
	for i, j := range a.jumps {
		alias := fmt.Sprintf("%s-jump%d", a.name, i)
		if i == len(a.jumps)-1 {
			alias = a.name + "-host"
		}
		fmt.Fprintf(&b, "Host %s\n  HostName %s\n  Port %d\n", alias, j.Host, j.Port)
		if j.User != "" {
			fmt.Fprintf(&b, "  User %s\n", j.User)
		}
		if j.IdentityFile != "" {
			fmt.Fprintf(&b, "  IdentityFile %s\n  IdentitiesOnly yes\n", quoteSSH(j.IdentityFile))
		}
		fmt.Fprintf(&b, "  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n", quoteSSH(knownHosts))
		if prev != "" {
			fmt.Fprintf(&b, "  ProxyJump %s\n", prev)
		}
		prev = alias
	}
	fmt.Fprintf(&b, "Host %s\n  HostName %s\n  Port %d\n  User %s\n", a.name, a.hostIP, a.port, nonEmpty(a.user, "root"))
	fmt.Fprintf(&b, "  IdentityFile %s\n  IdentitiesOnly yes\n", quoteSSH(keyPath))
	fmt.Fprintf(&b, "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
	fmt.Fprintf(&b, "  ServerAliveInterval 15\n")
	if prev != "" {
		fmt.Fprintf(&b, "  ProxyJump %s\n", prev)
	}
	fmt.Fprintf(&b, "# <<< dstack dev-environment %s\n", a.name)
	return b.String()
}

func quoteSSH(p string) string {
	if strings.ContainsAny(p, " \t") {
		return `"` + p + `"`
	}
	return p
}

// replaceBlock returns config with the block of name replaced by block
// (removed when block is empty), other text kept as it is.
func replaceBlock(config, name, block string) string {
	begin := "# >>> dstack dev-environment " + name + " "
	end := "# <<< dstack dev-environment " + name + "\n"
	if i := strings.Index(config, begin); i >= 0 {
		if j := strings.Index(config[i:], end); j >= 0 {
			config = config[:i] + config[i+j+len(end):]
		}
	}
	if block != "" {
		if config != "" && !strings.HasSuffix(config, "\n") {
			config += "\n"
		}
		config += block
	}
	return config
}

// writeDevSSH writes (or, with a nil access, removes) a dev
// environment's entry in dstack's SSH config, and the host keys its jumps
// are checked against.
func writeDevSSH(env Env, name string, a *devAccess) (string, error) {
	cfgPath := sshConfigPath(env)
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		return "", err
	}
	old, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", cfgPath, err)
	}
	block := ""
	if a != nil {
		keyPath, _, err := userSSHKey(env)
		if err != nil {
			return "", err
		}
		known := filepath.Join(filepath.Dir(cfgPath), "known_hosts")
		if err := addKnownHosts(known, a.jumps); err != nil {
			return "", err
		}
		block = a.sshBlock(keyPath, known)
	}
	updated := replaceBlock(string(old), name, block)
	if updated == string(old) {
		return cfgPath, nil
	}
	if err := renameio.WriteFile(cfgPath, []byte(updated), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", cfgPath, err)
	}
	return cfgPath, nil
}

// addKnownHosts records the jumps' host keys, as known_hosts lines.
func addKnownHosts(path string, jumps []providers.SSHHop) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	text := string(old)
	for _, j := range jumps {
		if j.HostKey == "" {
			continue
		}
		host := j.Host
		if j.Port != 0 && j.Port != 22 {
			host = fmt.Sprintf("[%s]:%d", j.Host, j.Port)
		}
		line := host + " " + strings.TrimSpace(j.HostKey) + "\n"
		if !strings.Contains(text, line) {
			text += line
		}
	}
	if text == string(old) {
		return nil
	}
	return renameio.WriteFile(path, []byte(text), 0o600)
}

// ideLink is the link that opens the run in its IDE, as dstack prints it.
func ideLink(ide, name, workDir string) (label, link string) {
	switch ide {
	case "vscode":
		return "VS Code", "vscode://vscode-remote/ssh-remote+" + name + workDir
	case "cursor":
		return "Cursor", "cursor://vscode-remote/ssh-remote+" + name + workDir
	case "windsurf":
		return "Windsurf", "windsurf://vscode-remote/ssh-remote+" + name + workDir
	case "zed":
		return "Zed", "zed://ssh/" + name + workDir
	}
	return "", ""
}

// announceDevEnv sets up SSH access to the dev environment r and tells
// the user how to open it.
func announceDevEnv(ctx context.Context, set providers.Set, r *state.Resource, env Env, w io.Writer) error {
	a, err := devEnvAccess(ctx, set, r)
	if err != nil {
		return err
	}
	cfgPath, err := writeDevSSH(env, a.name, a)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	if label, link := ideLink(a.ide, a.name, a.workDir); link != "" {
		fmt.Fprintf(w, "To open %s in %s, use this link:\n  %s\n\n", r.Address, label, link)
	}
	fmt.Fprintf(w, "To connect via SSH: ssh %s\n", a.name)
	if hint := includeHint(env, cfgPath); hint != "" {
		fmt.Fprintln(w, hint)
	}
	return nil
}

// includeHint says how to make ssh read dstack's config, unless the
// user's ~/.ssh/config includes it already.
func includeHint(env Env, cfgPath string) string {
	home, _ := env.Get("HOME")
	userCfg := filepath.Join(home, ".ssh", "config")
	include := "Include " + cfgPath
	if rel, err := filepath.Rel(home, cfgPath); err == nil && !strings.HasPrefix(rel, "..") {
		include = "Include ~/" + filepath.ToSlash(rel)
	}
	if b, err := os.ReadFile(userCfg); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && strings.EqualFold(f[0], "Include") && (f[1] == cfgPath || "Include "+f[1] == include) {
				return ""
			}
		}
	}
	return fmt.Sprintf("(dstack wrote the host to %s: add the line `%s` at the top of %s once, so that ssh and IDEs find it)", cfgPath, include, userCfg)
}

// devEnvChanges lists the dev environments a plan makes or changes.
func devEnvChanges(p *planner.Plan) []string {
	var out []string
	for _, c := range p.Changes {
		if c.Kind == lang.KindDevEnvironment && c.Action != planner.Delete {
			out = append(out, c.Address)
		}
	}
	return out
}

// forgetDevEnvs removes the SSH entries of the dev environments a plan
// tore down.
func forgetDevEnvs(p *planner.Plan, st *state.State, env Env, stderr io.Writer) {
	for _, c := range p.Changes {
		if c.Kind != lang.KindDevEnvironment || c.Action != planner.Delete || st.Resource(c.Address) != nil {
			continue
		}
		name := strings.TrimPrefix(c.Address, string(lang.KindDevEnvironment)+".")
		if _, err := writeDevSSH(env, name, nil); err != nil {
			fmt.Fprintf(stderr, "dstack: removing the SSH entry of %s: %v\n", c.Address, err)
		}
	}
}
