package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/lang/hclconf"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/backendproc"
	"github.com/dstackai/dstack-go/state/httpstate"
	"github.com/dstackai/dstack-go/state/local"
)

// dataDir is where dstack keeps what init chose, beside the
// configuration (like Terraform's .terraform).
const dataDir = ".dstack"

// backendSettings is what `dstack init` records: the backend and its
// settings. The file is written with mode 0600 and never printed, since
// settings may hold credentials.
type backendSettings struct {
	Type   string            `json:"type"`
	Config map[string]string `json:"config"`
}

func settingsPath() string { return filepath.Join(dataDir, "backend.json") }

func readSettings() (*backendSettings, error) {
	data, err := os.ReadFile(settingsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", settingsPath(), err)
	}
	var s backendSettings
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); run dstack init -reconfigure", settingsPath(), err)
	}
	return &s, nil
}

func writeSettings(s *backendSettings) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(s, "", "  ")
	return renameio.WriteFile(settingsPath(), append(data, '\n'), 0o600)
}

// defaultSettings is the local backend in .dstack, used until init
// chooses another.
func defaultSettings() *backendSettings {
	return &backendSettings{Type: "local", Config: map[string]string{"path": dataDir}}
}

func (s *backendSettings) open() (state.Backend, error) {
	cfg := maps.Clone(s.Config)
	if s.Type == "local" && cfg["path"] == "" {
		if cfg == nil {
			cfg = map[string]string{}
		}
		cfg["path"] = dataDir
	}
	return newBackend(s.Type, cfg)
}

// builtinBackends need nothing beyond the standard library and are
// linked into dstack.
var builtinBackends = map[string]func(cfg map[string]string) (state.Backend, error){
	"local": func(cfg map[string]string) (state.Backend, error) { return local.New(cfg) },
	"http":  func(cfg map[string]string) (state.Backend, error) { return httpstate.New(cfg) },
}

// processBackends run in a program of their own, dstack-backend-NAME,
// which links the backend's SDK: linked here, the SDKs' package
// initialisation alone would slow every command, `dstack version`
// included, whichever backend it uses (docs/design.md, "How providers
// and backends are linked").
var processBackends = []string{"azurerm", "gcs", "pg", "s3"}

// backendNames lists every backend, sorted.
func backendNames() []string {
	names := slices.Clone(processBackends)
	for n := range builtinBackends {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// newBackend builds the named backend from its settings: in this process,
// or in its own program, started now and ended when dstack exits.
func newBackend(name string, cfg map[string]string) (state.Backend, error) {
	var b state.Backend
	var err error
	switch {
	case builtinBackends[name] != nil:
		b, err = builtinBackends[name](cfg)
	case slices.Contains(processBackends, name):
		var prog string
		if prog, err = backendProgram(name); err == nil {
			b, err = backendproc.Start(context.Background(), exec.Command(prog), cfg)
		}
	default:
		return nil, fmt.Errorf("unknown backend %q (known: %s)", name, strings.Join(backendNames(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("configuring the %s backend: %w", name, err)
	}
	return b, nil
}

// backendProgram finds dstack-backend-NAME: beside this dstack, else on
// PATH.
func backendProgram(name string) (string, error) {
	prog := "dstack-backend-" + name
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), prog)
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(prog); err == nil {
		return p, nil
	}
	where := "this dstack"
	if exe != "" {
		where = filepath.Dir(exe)
	}
	return "", fmt.Errorf("the %s backend runs in its own program, %s, which is neither in %s nor on PATH: install it beside dstack (make build puts it in bin/; or go build -o DIR ./cmd/%s)", name, prog, where, prog)
}

// openBackend returns the backend init chose (the local one before any
// init) and the selected workspace.
func openBackend(env Env) (state.Backend, string, error) {
	s, err := readSettings()
	if err != nil {
		return nil, "", err
	}
	if s == nil {
		s = defaultSettings()
	}
	b, err := s.open()
	if err != nil {
		return nil, "", err
	}
	return b, currentWorkspace(env), nil
}

func workspacePath() string { return filepath.Join(dataDir, "environment") }

// currentWorkspace is DSTACK_WORKSPACE, else the one selected with
// `dstack workspace select`, else "default".
func currentWorkspace(env Env) string {
	if ws, ok := env.Get("DSTACK_WORKSPACE"); ok && ws != "" {
		return ws
	}
	if data, err := os.ReadFile(workspacePath()); err == nil {
		if ws := strings.TrimSpace(string(data)); ws != "" {
			return ws
		}
	}
	return state.DefaultWorkspace
}

// parseBackendConfig reads -backend-config values: KEY=VALUE pairs, or
// files of KEY = "value" lines (HCL attributes).
func parseBackendConfig(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && !strings.ContainsAny(k, "/\\") {
			out[strings.TrimSpace(k)] = v
			continue
		}
		src, err := os.ReadFile(a)
		if err != nil {
			return nil, fmt.Errorf("-backend-config %q is neither KEY=VALUE nor a readable file: %w", a, err)
		}
		settings, diags := hclconf.LoadSettings(a, src)
		if err := diags.Err(); err != nil {
			return nil, err
		}
		for k, v := range settings {
			out[k] = v
		}
	}
	return out, nil
}

// lockFlags are the locking options of every command that writes state.
type lockFlags struct {
	lock    bool
	timeout time.Duration
}

func (l *lockFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&l.lock, "lock", true, "lock the state while working (false only to recover; says so loudly)")
	fs.DurationVar(&l.timeout, "lock-timeout", 0, "how long to wait for a lock someone else holds")
}

// lockInfo describes the lock a command takes: who, for what, and the
// process (so that its intents can be known to be over once it ends).
func lockInfo(op, ws string) state.LockInfo {
	host, _ := os.Hostname()
	return state.LockInfo{Operation: op, Who: who(), Version: version(), Path: ws, Host: host, PID: os.Getpid()}
}

func who() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// holdLock is how every command that writes state takes the workspace's
// lock for op: a lease that keeps it while the command works (release it
// with releaseLock), or, with -lock=false, no lease and a loud warning.
func holdLock(ctx context.Context, s Streams, b state.Backend, ws string, lf lockFlags, op string) (*state.Lease, error) {
	if !lf.lock {
		fmt.Fprintln(s.Stderr, "Warning: -lock=false: the state is NOT locked. Another run may change it at the same time; "+
			"writes are still compare-and-swap, so a conflicting change fails instead of being lost.")
		return nil, nil
	}
	return state.Hold(ctx, b, ws, lockInfo(op, ws), state.HoldOptions{Timeout: lf.timeout})
}

// releaseLock gives a lease from holdLock back (nil: none was taken),
// even when ctx was cancelled, and reports a failure to do so.
func releaseLock(ctx context.Context, s Streams, lease *state.Lease) {
	if lease == nil {
		return
	}
	if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
	}
}

// lockID is a lease's lock ID ("" without one), for compare-and-swap
// writes.
func lockID(lease *state.Lease) string {
	if lease == nil {
		return ""
	}
	return lease.Info.ID
}

// stateMissing says what mutate does when there is no state to change,
// or only a corrupt one.
type stateMissing int

const (
	mustExist      stateMissing = iota // an error
	mayCreate                          // fn gets a new, empty state
	replaceCorrupt                     // as mayCreate, and a corrupt state is replaced too (state push -force)
)

// mutate runs fn on the workspace's state under its lock and writes the
// result with a compare-and-swap: the serial goes up by one, the lineage
// stays. fn returns whether it changed anything.
func mutate(ctx context.Context, s Streams, env Env, lf lockFlags, op string, missing stateMissing, fn func(*state.State) (bool, error)) error {
	b, ws, err := openBackend(env)
	if err != nil {
		return err
	}
	lease, err := holdLock(ctx, s, b, ws, lf, op)
	if err != nil {
		return err
	}
	defer releaseLock(ctx, s, lease)
	snap, err := b.Read(ctx, ws)
	var st *state.State
	var prev state.Version
	var corrupt *state.CorruptError
	switch {
	case errors.Is(err, state.ErrNotFound) && missing != mustExist:
		st = state.New(version())
	case errors.As(err, &corrupt) && missing == replaceCorrupt && corrupt.Version != "":
		fmt.Fprintf(s.Stderr, "Replacing the corrupt state at %s (%s).\n", corrupt.Where, corrupt.Reason)
		st, prev = state.New(version()), corrupt.Version
	case errors.Is(err, state.ErrNotFound):
		return fmt.Errorf("workspace %q has no state yet", ws)
	case err != nil:
		return err
	default:
		st, prev = snap.State, snap.Version
	}
	changed, err := fn(st)
	if err != nil || !changed {
		return err
	}
	st.Serial++
	st.ToolVersion = version()
	_, err = b.Write(ctx, ws, st, prev, lockID(lease))
	return err
}
