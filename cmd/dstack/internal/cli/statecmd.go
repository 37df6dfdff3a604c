package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/load"
	"github.com/dstackai/dstack-go/state"
)

// commandContext is cancelled by the first interrupt, so a command stops
// waiting (for a lock, a server) and releases what it holds.
func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

func fail(s Streams, err error) int {
	fmt.Fprintf(s.Stderr, "Error: %v\n", err)
	return ExitInvalid
}

func runInit(argv []string, s Streams, env Env) int {
	var backendConfig []string
	var migrate, reconfigure bool
	var files []string
	fs := newFlagSet("init", "init [options] [DIR]\n\nChooses where state lives: the dstack { backend \"TYPE\" { ... } } block of\nthe configuration in DIR (default: the current directory), with settings\nfrom -backend-config; the local backend (.dstack/) when there is none.", s)
	fs.Var((*stringList)(&backendConfig), "backend-config", "a backend setting `KEY=VALUE`, or a file of KEY = \"value\" lines (repeatable)")
	fs.BoolVar(&migrate, "migrate-state", false, "copy every workspace's state from the previous backend (lineage and serial kept)")
	fs.BoolVar(&reconfigure, "reconfigure", false, "use the new backend without copying state")
	fs.Var((*stringList)(&files), "f", "a configuration `FILE` (repeatable)")
	paths, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	var cfg *lang.Config
	var diags lang.Diagnostics
	switch {
	case len(files) > 0:
		cfg, diags = load.Files(files, load.Options{Environ: env})
	default:
		dir := "."
		if len(paths) > 0 {
			dir = paths[0]
		}
		found, err := load.Dir(dir)
		if err != nil {
			return fail(s, err)
		}
		cfg, diags = load.Files(found, load.Options{Environ: env})
	}
	if diags.HasErrors() {
		_ = lang.WriteText(s.Stderr, diags, cfg.Sources, lang.TextOptions{Color: useColor(s.Stderr, env, false)})
		return ExitInvalid
	}
	extra, err := parseBackendConfig(backendConfig)
	if err != nil {
		return fail(s, err)
	}
	next := defaultSettings()
	if cfg.Backend != nil {
		next = &backendSettings{Type: cfg.Backend.Type, Config: map[string]string{}}
		for k, v := range cfg.Backend.Config {
			next.Config[k] = v
		}
	}
	for k, v := range extra {
		next.Config[k] = v
	}
	newBackend, err := next.open()
	if err != nil {
		return fail(s, err)
	}
	prev, err := readSettings()
	if err != nil {
		return fail(s, err)
	}
	ctx, cancel := commandContext()
	defer cancel()
	if prev == nil {
		// Before the first init, state lives in the default local backend;
		// if it holds any, it must not be left behind silently.
		if b, err := defaultSettings().open(); err == nil {
			if wss, err := b.Workspaces(ctx); err == nil && len(wss) > 0 {
				prev = defaultSettings()
			}
		}
	}
	if prev != nil && !sameSettings(prev, next) {
		switch {
		case migrate:
			old, err := prev.open()
			if err != nil {
				return fail(s, fmt.Errorf("opening the previous backend: %w", err))
			}
			if err := migrateState(ctx, s, old, newBackend); err != nil {
				return fail(s, err)
			}
		case reconfigure:
		default:
			change := fmt.Sprintf("the backend changed from %q to %q", prev.Type, next.Type)
			if prev.Type == next.Type {
				change = fmt.Sprintf("the settings of the %s backend changed", next.Type)
			}
			return fail(s, fmt.Errorf("%s: run dstack init -migrate-state to copy the state, or -reconfigure to start from the new backend's state", change))
		}
	}
	if _, err := newBackend.Workspaces(ctx); err != nil {
		return fail(s, fmt.Errorf("reaching the %s backend: %w", next.Type, err))
	}
	if err := writeSettings(next); err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Initialized the %s backend. Workspace: %s.\n", next.Type, currentWorkspace(env))
	return ExitOK
}

func sameSettings(a, b *backendSettings) bool {
	if a.Type != b.Type || len(a.Config) != len(b.Config) {
		return false
	}
	for k, v := range a.Config {
		if b.Config[k] != v {
			return false
		}
	}
	return true
}

// migrateState copies each workspace's state, lineage and serial kept.
// A destination that already has a different state is not overwritten.
func migrateState(ctx context.Context, s Streams, from, to state.Backend) error {
	wss, err := from.Workspaces(ctx)
	if err != nil {
		return fmt.Errorf("listing workspaces to migrate: %w", err)
	}
	for _, ws := range wss {
		snap, err := from.Read(ctx, ws)
		if err != nil {
			return fmt.Errorf("reading workspace %s: %w", ws, err)
		}
		var prev state.Version
		switch cur, err := to.Read(ctx, ws); {
		case errors.Is(err, state.ErrNotFound):
		case err != nil:
			return fmt.Errorf("reading workspace %s in the new backend: %w", ws, err)
		case cur.State.Lineage != snap.State.Lineage:
			return fmt.Errorf("workspace %s already has a different state (lineage %s) in the new backend; nothing was copied over it", ws, cur.State.Lineage)
		case cur.State.Serial > snap.State.Serial:
			return fmt.Errorf("workspace %s is newer in the new backend (serial %d > %d); nothing was copied over it", ws, cur.State.Serial, snap.State.Serial)
		default:
			prev = cur.Version
		}
		if _, err := to.Write(ctx, ws, snap.State, prev, ""); err != nil {
			return fmt.Errorf("copying workspace %s: %w", ws, err)
		}
		fmt.Fprintf(s.Stdout, "Copied workspace %s (serial %d).\n", ws, snap.State.Serial)
	}
	return nil
}

func runState(argv []string, s Streams, env Env) int {
	if len(argv) == 0 {
		fmt.Fprintln(s.Stderr, "Usage: dstack state list|show ADDR|pull [-out FILE]|push FILE|rm ADDR...|mv FROM TO")
		return ExitInvalid
	}
	sub, args := argv[0], argv[1:]
	ctx, cancel := commandContext()
	defer cancel()
	switch sub {
	case "list":
		return stateList(ctx, args, s, env)
	case "show":
		return stateShow(ctx, args, s, env)
	case "pull":
		return statePull(ctx, args, s, env)
	case "push":
		return statePush(ctx, args, s, env)
	case "rm":
		return stateRm(ctx, args, s, env)
	case "mv":
		return stateMv(ctx, args, s, env)
	}
	fmt.Fprintf(s.Stderr, "dstack state: unknown subcommand %q\n", sub)
	return ExitInvalid
}

func readCurrent(ctx context.Context, env Env) (*state.Snapshot, string, error) {
	b, ws, err := openBackend(env)
	if err != nil {
		return nil, "", err
	}
	snap, err := b.Read(ctx, ws)
	if errors.Is(err, state.ErrNotFound) {
		return nil, ws, nil
	}
	return snap, ws, err
}

func stateList(ctx context.Context, args []string, s Streams, env Env) int {
	fs := newFlagSet("state list", "state list", s)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	snap, _, err := readCurrent(ctx, env)
	if err != nil {
		return fail(s, err)
	}
	if snap == nil {
		return ExitOK
	}
	for _, r := range snap.State.Resources {
		fmt.Fprintln(s.Stdout, r.Address)
	}
	return ExitOK
}

func stateShow(ctx context.Context, args []string, s Streams, env Env) int {
	fs := newFlagSet("state show", "state show ADDR\n\nPrints one resource as recorded; sensitive values are masked.", s)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitInvalid
	}
	snap, ws, err := readCurrent(ctx, env)
	if err != nil {
		return fail(s, err)
	}
	addr := fs.Arg(0)
	if snap == nil || snap.State.Resource(addr) == nil {
		return fail(s, fmt.Errorf("no resource %s in the state of workspace %q", addr, ws))
	}
	r := snap.State.Masked().Resource(addr)
	out, _ := json.MarshalIndent(r, "", "  ")
	fmt.Fprintf(s.Stdout, "%s\n", out)
	return ExitOK
}

func statePull(ctx context.Context, args []string, s Streams, env Env) int {
	var out string
	fs := newFlagSet("state pull", "state pull [-out FILE]\n\nPrints the state with sensitive values masked; -out FILE writes the complete\nstate (secrets included) to FILE, mode 0600, for backup or state push.", s)
	fs.StringVar(&out, "out", "", "write the complete state to `FILE`")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	snap, ws, err := readCurrent(ctx, env)
	if err != nil {
		return fail(s, err)
	}
	if snap == nil {
		return fail(s, fmt.Errorf("workspace %q has no state", ws))
	}
	if out != "" {
		data, err := state.Encode(snap.State)
		if err != nil {
			return fail(s, err)
		}
		if err := renameio.WriteFile(out, data, 0o600); err != nil {
			return fail(s, err)
		}
		fmt.Fprintf(s.Stderr, "Wrote the state of workspace %q (serial %d) to %s.\n", ws, snap.State.Serial, out)
		return ExitOK
	}
	data, err := json.MarshalIndent(snap.State.Masked(), "", "  ")
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "%s\n", data)
	return ExitOK
}

func statePush(ctx context.Context, args []string, s Streams, env Env) int {
	var force bool
	var lf lockFlags
	fs := newFlagSet("state push", "state push [-force] FILE\n\nReplaces the workspace's state with FILE. A state of another lineage, or an\nolder serial than the current one, is refused unless -force; -force also\nreplaces a state that is corrupt.", s)
	fs.BoolVar(&force, "force", false, "push even a different lineage or an older serial, or over a corrupt state")
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitInvalid
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fail(s, err)
	}
	pushed, err := state.Decode(data, fs.Arg(0))
	if err != nil {
		return fail(s, err)
	}
	missing := mayCreate
	if force {
		missing = replaceCorrupt
	}
	err = mutate(ctx, s, env, lf, "state push", missing, func(cur *state.State) (bool, error) {
		if cur.Serial > 0 && !force {
			if cur.Lineage != pushed.Lineage {
				return false, fmt.Errorf("%s has lineage %s but the state has %s: it is a different state; use -force to replace it anyway", fs.Arg(0), pushed.Lineage, cur.Lineage)
			}
			if pushed.Serial < cur.Serial {
				return false, fmt.Errorf("%s has serial %d, older than the state's %d; use -force to go back anyway", fs.Arg(0), pushed.Serial, cur.Serial)
			}
		}
		serial := max(pushed.Serial, cur.Serial) // mutate adds one
		*cur = *pushed
		cur.Serial = serial
		return true, nil
	})
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintln(s.Stdout, "State pushed.")
	return ExitOK
}

func stateRm(ctx context.Context, args []string, s Streams, env Env) int {
	var lf lockFlags
	fs := newFlagSet("state rm", "state rm ADDR...\n\nForgets resources, or one instance of a resource with ADDR[i] (an SSH fleet's host\nthat is gone for good): dstack stops managing them; nothing is destroyed.", s)
	lf.register(fs)
	addrs, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(addrs) == 0 {
		fs.Usage()
		return ExitInvalid
	}
	err = mutate(ctx, s, env, lf, "state rm", mustExist, func(st *state.State) (bool, error) {
		// An error leaves the stored state as it was: nothing is written.
		return true, st.Forget(addrs...)
	})
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Removed %s from the state.\n", strings.Join(addrs, ", "))
	return ExitOK
}

func stateMv(ctx context.Context, args []string, s Streams, env Env) int {
	var lf lockFlags
	fs := newFlagSet("state mv", "state mv FROM TO\n\nRenames a resource in the state, for a resource renamed in the configuration.", s)
	lf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 2 {
		fs.Usage()
		return ExitInvalid
	}
	from, to := pos[0], pos[1]
	fa, err1 := lang.ParseAddress(from)
	ta, err2 := lang.ParseAddress(to)
	if err := errors.Join(err1, err2); err != nil {
		return fail(s, err)
	}
	if fa.Kind != ta.Kind {
		// Refused before the lock is taken; Move checks it too.
		return fail(s, fmt.Errorf("cannot move %s to %s: the kind differs", from, to))
	}
	err = mutate(ctx, s, env, lf, "state mv", mustExist, func(st *state.State) (bool, error) {
		return true, st.Move(from, to)
	})
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Moved %s to %s.\n", from, to)
	return ExitOK
}

func runForceUnlock(argv []string, s Streams, env Env) int {
	var force bool
	fs := newFlagSet("force-unlock", "force-unlock [-force] LOCK_ID\n\nBreaks the state lock with that ID at once. Only for a lock whose run is\ngone and whose lease you cannot wait out; -force skips the question.", s)
	fs.BoolVar(&force, "force", false, "do not ask for confirmation")
	pos, err := parseFlags(fs, argv)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return ExitInvalid
	}
	ctx, cancel := commandContext()
	defer cancel()
	b, ws, err := openBackend(env)
	if err != nil {
		return fail(s, err)
	}
	info, err := b.LockInfo(ctx, ws)
	if err != nil {
		return fail(s, err)
	}
	if info == nil {
		return fail(s, fmt.Errorf("workspace %q is not locked", ws))
	}
	if info.ID != pos[0] {
		return fail(s, fmt.Errorf("the lock of workspace %q is %s, not %s; nothing was unlocked", ws, info.ID, pos[0]))
	}
	if !force {
		fmt.Fprintf(s.Stdout, "This breaks %s.\nIf that run is still working, it will fail on its next write. Type yes to go on: ", info)
		var answer string
		if _, err := fmt.Fscanln(s.Stdin, &answer); err != nil || strings.TrimSpace(answer) != "yes" {
			return fail(s, fmt.Errorf("not confirmed; nothing was unlocked (use -force when no one can answer)"))
		}
	}
	if err := b.ForceUnlock(ctx, ws, pos[0]); err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Unlocked workspace %q.\n", ws)
	return ExitOK
}

func runWorkspace(argv []string, s Streams, env Env) int {
	if len(argv) == 0 {
		fmt.Fprintln(s.Stderr, "Usage: dstack workspace list|show|new NAME|select NAME|delete [-force] NAME")
		return ExitInvalid
	}
	ctx, cancel := commandContext()
	defer cancel()
	b, cur, err := openBackend(env)
	if err != nil {
		return fail(s, err)
	}
	sub, args := argv[0], argv[1:]
	switch sub {
	case "show":
		fmt.Fprintln(s.Stdout, cur)
		return ExitOK
	case "list":
		wss, err := b.Workspaces(ctx)
		if err != nil {
			return fail(s, err)
		}
		if !slices.Contains(wss, state.DefaultWorkspace) {
			wss = append(wss, state.DefaultWorkspace)
		}
		if !slices.Contains(wss, cur) {
			wss = append(wss, cur)
		}
		sort.Strings(wss)
		for _, ws := range wss {
			mark := "  "
			if ws == cur {
				mark = "* "
			}
			fmt.Fprintln(s.Stdout, mark+ws)
		}
		return ExitOK
	case "new", "select", "delete":
	default:
		return fail(s, fmt.Errorf("unknown workspace subcommand %q", sub))
	}
	var force bool
	fs := newFlagSet("workspace "+sub, "workspace "+sub+" NAME", s)
	if sub == "delete" {
		fs.BoolVar(&force, "force", false, "delete a workspace whose state still has resources")
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 || !lang.ValidName(pos[0]) && pos[0] != state.DefaultWorkspace {
		return fail(s, fmt.Errorf("give one workspace name: lower-case letters, digits and dashes"))
	}
	name := pos[0]
	wss, err := b.Workspaces(ctx)
	if err != nil {
		return fail(s, err)
	}
	exists := slices.Contains(wss, name) || name == state.DefaultWorkspace
	switch sub {
	case "new":
		if exists {
			return fail(s, fmt.Errorf("workspace %q already exists", name))
		}
		st := state.New(version())
		st.Serial = 1
		if _, err := b.Write(ctx, name, st, "", ""); err != nil {
			return fail(s, err)
		}
		fallthrough
	case "select":
		if !exists && sub == "select" {
			return fail(s, fmt.Errorf("workspace %q does not exist; create it with dstack workspace new %s", name, name))
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fail(s, err)
		}
		if err := renameio.WriteFile(workspacePath(), []byte(name+"\n"), 0o600); err != nil {
			return fail(s, err)
		}
		fmt.Fprintf(s.Stdout, "Switched to workspace %q.\n", name)
	case "delete":
		if name == state.DefaultWorkspace {
			return fail(s, fmt.Errorf("the default workspace cannot be deleted"))
		}
		if name == cur {
			return fail(s, fmt.Errorf("cannot delete the current workspace; select another first"))
		}
		if !exists {
			return fail(s, fmt.Errorf("workspace %q does not exist", name))
		}
		snap, err := b.Read(ctx, name)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return fail(s, err)
		}
		if snap != nil && len(snap.State.Resources) > 0 && !force {
			return fail(s, fmt.Errorf("workspace %q still tracks %d resources; destroy them first, or use -force to forget them", name, len(snap.State.Resources)))
		}
		if err := b.DeleteWorkspace(ctx, name); err != nil {
			return fail(s, err)
		}
		fmt.Fprintf(s.Stdout, "Deleted workspace %q.\n", name)
	}
	return ExitOK
}
