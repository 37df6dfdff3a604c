package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/dstackai/dstack-go/lang/interp"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/secrets"
)

// envNewKey gives rotate-key the new key, as DSTACK_SECRETS_KEY gives
// the current one.
const envNewKey = "DSTACK_SECRETS_NEW_KEY"

const secretUsage = `secret <command> [options] [NAME]

Manages the team's secrets, kept in the state (of the selected workspace)
sealed with AES-256-GCM under the team's key. Runs reference them as
${{ secrets.NAME }} in env and registry_auth.

Commands:
  set NAME          store a secret; the value is read from standard input
                    (or asked for on a terminal), never from the command line
  get -reveal NAME  print a secret's value (without -reveal: whether it is set)
  list              list the secrets' names
  delete NAME       remove a secret (-y: without asking)
  rotate-key        re-seal every secret under a new key
  keygen            make a new key (-out FILE: into a new file, mode 0600)

The key is the first of: DSTACK_SECRETS_KEY (the key, base64), the file
DSTACK_SECRETS_KEY_FILE names, ~/.dstack/secrets.key. With the local backend
the first secret set makes ~/.dstack/secrets.key; with a shared backend the
team shares a key made with keygen.`

func runSecret(argv []string, s Streams, env Env) int {
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "-help" || argv[0] == "--help" {
		fmt.Fprintf(s.Stderr, "Usage: dstack %s\n", secretUsage)
		if len(argv) == 0 {
			return ExitInvalid
		}
		return ExitOK
	}
	ctx, cancel := commandContext()
	defer cancel()
	switch argv[0] {
	case "set":
		return secretSet(ctx, argv[1:], s, env)
	case "get":
		return secretGet(ctx, argv[1:], s, env)
	case "list", "ls":
		return secretList(ctx, argv[1:], s, env)
	case "delete", "rm":
		return secretDelete(ctx, argv[1:], s, env)
	case "rotate-key":
		return secretRotate(ctx, argv[1:], s, env)
	case "keygen":
		return secretKeygen(argv[1:], s)
	}
	fmt.Fprintf(s.Stderr, "dstack secret: unknown command %q\n\nUsage: dstack %s\n", argv[0], secretUsage)
	return ExitInvalid
}

// oneName parses a subcommand's flags and its one NAME; when it cannot,
// ok is false and code is the exit code.
func oneName(fl *flag.FlagSet, argv []string, s Streams) (name string, code int, ok bool) {
	args, err := parseFlags(fl, argv)
	if err != nil {
		return "", flagExit(err), false
	}
	if len(args) != 1 {
		return "", fail(s, fmt.Errorf("%s takes one NAME", fl.Name())), false
	}
	if err := secrets.ValidName(args[0]); err != nil {
		return "", fail(s, err), false
	}
	return args[0], ExitOK, true
}

func loadKey(env Env) (secrets.Loaded, error) {
	home, _ := env.Get("HOME")
	return secrets.Load(env.Get, home)
}

// keyFor finds the key to seal with: the team's, or, for a state on the
// local backend that holds no secrets yet, a new one kept in
// ~/.dstack/secrets.key. A shared backend never gets a key made on one
// machine: the others could not open what it seals.
func keyFor(st *state.State, env Env, s Streams) (secrets.Key, error) {
	l, err := loadKey(env)
	if err == nil || !errors.Is(err, secrets.ErrNoKey) {
		return l.Key, err
	}
	settings, serr := readSettings()
	if serr != nil {
		return secrets.Key{}, serr
	}
	backend := "local"
	if settings != nil {
		backend = settings.Type
	}
	switch {
	case len(st.SecretNames()) > 0:
		return secrets.Key{}, fmt.Errorf("%w: the state's secrets are sealed with key %s; set %s or %s to it", secrets.ErrNoKey, st.Secrets.KeyID, secrets.EnvKey, secrets.EnvKeyFile)
	case backend != "local":
		return secrets.Key{}, fmt.Errorf("%w: with the %s backend the team shares one key: make it with dstack secret keygen -out FILE, then set %s=FILE (or %s to its content)", secrets.ErrNoKey, backend, secrets.EnvKeyFile, secrets.EnvKey)
	case !l.Default:
		return secrets.Key{}, err // no home directory to keep one in
	}
	k, err := secrets.NewKey()
	if err != nil {
		return secrets.Key{}, err
	}
	if err := secrets.WriteKeyFile(l.Path, k); err != nil {
		return secrets.Key{}, err
	}
	fmt.Fprintf(s.Stderr, "Made a secrets key (%s) in %s, mode 0600. Keep it safe: without it the secrets cannot be opened.\n", k.ID(), l.Path)
	return k, nil
}

// readValue reads a secret's value: asked for without echo on a
// terminal, else all of standard input less one final newline.
func readValue(s Streams, name string) (string, error) {
	if f, ok := s.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(s.Stderr, "Value of %s: ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(s.Stderr)
		if err != nil {
			return "", fmt.Errorf("reading the value: %w", err)
		}
		return string(b), nil
	}
	if s.Stdin == nil {
		return "", errors.New("no value: give it on standard input")
	}
	b, err := io.ReadAll(s.Stdin)
	if err != nil {
		return "", fmt.Errorf("reading the value from standard input: %w", err)
	}
	v := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

func secretSet(ctx context.Context, argv []string, s Streams, env Env) int {
	fs := newFlagSet("secret set", "secret set [-value VALUE] NAME\n\nStores a secret, sealed, in the state. The value is read from standard input\n(printf %s \"$TOKEN\" | dstack secret set hf_token), or asked for on a terminal.", s)
	value := fs.String("value", "", "the value on the command line: it then shows in shell history and the process list; prefer standard input")
	var lf lockFlags
	lf.register(fs)
	name, code, ok := oneName(fs, argv, s)
	if !ok {
		return code
	}
	v := *value
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "value" })
	if given {
		fmt.Fprintln(s.Stderr, "Warning: a value given with -value shows in shell history and the process list; prefer standard input.")
	} else {
		var err error
		if v, err = readValue(s, name); err != nil {
			return fail(s, err)
		}
	}
	if v == "" {
		return fail(s, fmt.Errorf("the value of %s is empty; nothing was stored", name))
	}
	var keyID string
	err := mutate(ctx, s, env, lf, "secret set", mayCreate, func(st *state.State) (bool, error) {
		k, err := keyFor(st, env, s)
		if err != nil {
			return false, err
		}
		keyID = k.ID()
		return true, secrets.Set(st, k, name, v)
	})
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Secret %s set (sealed with key %s).\n", name, keyID)
	return ExitOK
}

func secretGet(ctx context.Context, argv []string, s Streams, env Env) int {
	fs := newFlagSet("secret get", "secret get [-reveal] NAME\n\nSays whether a secret is set; with -reveal prints its value, and only its value.", s)
	reveal := fs.Bool("reveal", false, "print the value")
	name, code, ok := oneName(fs, argv, s)
	if !ok {
		return code
	}
	snap, ws, err := readCurrent(ctx, env)
	if err != nil {
		return fail(s, err)
	}
	if snap == nil || !snap.State.HasSecret(name) {
		return fail(s, fmt.Errorf("secret %s is not set in workspace %q", name, ws))
	}
	if !*reveal {
		fmt.Fprintf(s.Stdout, "Secret %s is set (sealed with key %s). Run with -reveal to print its value.\n", name, snap.State.Secrets.KeyID)
		return ExitOK
	}
	l, err := loadKey(env)
	if err != nil {
		return fail(s, err)
	}
	v, err := secrets.Get(snap.State, l.Key, name)
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintln(s.Stdout, v)
	return ExitOK
}

func secretList(ctx context.Context, argv []string, s Streams, env Env) int {
	fs := newFlagSet("secret list", "secret list\n\nLists the secrets' names, never their values.", s)
	if err := fs.Parse(argv); err != nil {
		return flagExit(err)
	}
	snap, ws, err := readCurrent(ctx, env)
	if err != nil {
		return fail(s, err)
	}
	if snap == nil || len(snap.State.SecretNames()) == 0 {
		fmt.Fprintf(s.Stderr, "No secrets in workspace %q.\n", ws)
		return ExitOK
	}
	for _, n := range snap.State.SecretNames() {
		fmt.Fprintln(s.Stdout, n)
	}
	return ExitOK
}

func secretDelete(ctx context.Context, argv []string, s Streams, env Env) int {
	fs := newFlagSet("secret delete", "secret delete [-y] NAME", s)
	yes := fs.Bool("y", false, "delete without asking")
	var lf lockFlags
	lf.register(fs)
	name, code, ok := oneName(fs, argv, s)
	if !ok {
		return code
	}
	if !*yes {
		f, ok := s.Stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return fail(s, fmt.Errorf("deleting secret %s needs confirmation and there is no terminal to ask on: run it with -y", name))
		}
		fmt.Fprintf(s.Stderr, "Delete the secret %s? [y/n]: ", name)
		line, _ := bufio.NewReader(s.Stdin).ReadString('\n')
		if a := strings.TrimSpace(line); a != "y" && a != "yes" {
			fmt.Fprintln(s.Stderr, "Nothing deleted.")
			return ExitInvalid
		}
	}
	err := mutate(ctx, s, env, lf, "secret delete", mustExist, func(st *state.State) (bool, error) {
		if !secrets.Delete(st, name) {
			return false, fmt.Errorf("secret %s is not set", name)
		}
		return true, nil
	})
	if err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Secret %s deleted.\n", name)
	return ExitOK
}

func secretRotate(ctx context.Context, argv []string, s Streams, env Env) int {
	fl := newFlagSet("secret rotate-key", "secret rotate-key [-new-key-file FILE]\n\nRe-seals every secret under a new key, in one write of the state. The current\nkey is found as for every secret command; the new one is DSTACK_SECRETS_NEW_KEY,\nor the key in -new-key-file FILE (made there if FILE does not exist). With\nneither, and the current key in ~/.dstack/secrets.key, a new key replaces it\nthere (the old one is kept beside it as secrets.key.old).", s)
	newFile := fl.String("new-key-file", "", "the new key's `FILE`; made, mode 0600, when it does not exist")
	var lf lockFlags
	lf.register(fl)
	if err := fl.Parse(argv); err != nil {
		return flagExit(err)
	}
	old, err := loadKey(env)
	if err != nil {
		return fail(s, err)
	}
	var next secrets.Key
	var replaceDefault string // the default key file, replaced after the write
	switch v, ok := env.Get(envNewKey); {
	case ok && v != "":
		if next, err = secrets.ParseKey(v); err != nil {
			return fail(s, fmt.Errorf("%s: %w", envNewKey, err))
		}
	case *newFile != "":
		next, err = secrets.ReadKeyFile(*newFile)
		if errors.Is(err, fs.ErrNotExist) {
			if next, err = secrets.NewKey(); err == nil {
				err = secrets.WriteKeyFile(*newFile, next)
			}
		}
		if err != nil {
			return fail(s, err)
		}
	case old.Default:
		if next, err = secrets.NewKey(); err != nil {
			return fail(s, err)
		}
		replaceDefault = old.Path
		_ = os.Remove(old.Path + ".new")
		if err := secrets.WriteKeyFile(old.Path+".new", next); err != nil {
			return fail(s, err)
		}
	default:
		return fail(s, fmt.Errorf("the current key comes from %s: give the new one with -new-key-file FILE (made if missing) or %s", old.From, envNewKey))
	}
	if next == old.Key {
		return fail(s, errors.New("the new key is the current one"))
	}
	var n int
	err = mutate(ctx, s, env, lf, "secret rotate-key", mustExist, func(st *state.State) (bool, error) {
		var err error
		n, err = secrets.Rotate(st, old.Key, next)
		return n > 0, err
	})
	if err != nil {
		if replaceDefault != "" {
			_ = os.Remove(replaceDefault + ".new")
		}
		return fail(s, err)
	}
	if replaceDefault != "" {
		// The state is sealed under the new key now: it goes where the
		// old one was, which is kept beside it.
		_ = os.Remove(replaceDefault + ".old")
		if err := os.Link(replaceDefault, replaceDefault+".old"); err != nil {
			return fail(s, fmt.Errorf("the secrets are sealed under the new key in %s.new, but keeping the old key failed (%w): move %s.new to %s yourself", replaceDefault, err, replaceDefault, replaceDefault))
		}
		if err := os.Rename(replaceDefault+".new", replaceDefault); err != nil {
			return fail(s, fmt.Errorf("the secrets are sealed under the new key in %s.new, but putting it in place failed (%w): move it to %s yourself", replaceDefault, err, replaceDefault))
		}
	}
	fmt.Fprintf(s.Stdout, "Re-sealed %d %s under key %s (was %s).\n", n, plural(n, "secret"), next.ID(), old.Key.ID())
	if replaceDefault != "" {
		fmt.Fprintf(s.Stdout, "The new key is in %s; the old one, which opens none of them now, in %s.old.\n", replaceDefault, replaceDefault)
	} else {
		fmt.Fprintln(s.Stdout, "Give the team the new key; the old one opens none of them now.")
	}
	return ExitOK
}

func secretKeygen(argv []string, s Streams) int {
	fs := newFlagSet("secret keygen", "secret keygen [-out FILE]\n\nMakes a new secrets key: into FILE (a new file, mode 0600), or printed.", s)
	out := fs.String("out", "", "write the key to `FILE` (never replacing one)")
	if err := fs.Parse(argv); err != nil {
		return flagExit(err)
	}
	k, err := secrets.NewKey()
	if err != nil {
		return fail(s, err)
	}
	if *out == "" {
		fmt.Fprintln(s.Stdout, k.String())
		return ExitOK
	}
	if err := secrets.WriteKeyFile(*out, k); err != nil {
		return fail(s, err)
	}
	fmt.Fprintf(s.Stdout, "Wrote key %s to %s. Point DSTACK_SECRETS_KEY_FILE at it.\n", k.ID(), *out)
	return ExitOK
}

// runSecrets are the opened secrets a plan's runs reference, nil when
// they reference none (then no key is needed).
func runSecrets(p *planner.Plan, st *state.State, env Env) (map[string]string, error) {
	var names []string
	for _, c := range p.Changes {
		if len(c.Spec) == 0 || c.Action == planner.Delete || c.Action == planner.NoOp {
			continue // makes no job: tearing down needs no key
		}
		_, uses, err := interp.CheckSpec(c.Spec, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Address, err)
		}
		for _, u := range uses {
			if u.Ref.Namespace == interp.NSSecrets {
				names = append(names, u.Ref.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	l, err := loadKey(env)
	if err != nil {
		return nil, fmt.Errorf("the runs reference secrets: %w", err)
	}
	return secrets.Open(st, l.Key, names)
}

// allSecretValues opens every secret of st, to hide them in a run's
// output. Without the key they cannot be hidden: it says so on stderr.
func allSecretValues(st *state.State, env Env, s Streams) []string {
	if st == nil || len(st.SecretNames()) == 0 {
		return nil
	}
	l, err := loadKey(env)
	var all map[string]string
	if err == nil {
		all, err = secrets.Open(st, l.Key, nil)
	}
	if err != nil {
		fmt.Fprintf(s.Stderr, "Warning: secret values in the output cannot be masked: %v\n", err)
		return nil
	}
	out := make([]string, 0, len(all))
	for _, v := range all {
		out = append(out, v)
	}
	return out
}
