// Package cli implements the dstack commands. Each command parses its
// flags into a typed struct, calls the engine packages, writes through the
// streams it is given and returns an exit code; nothing here prints
// directly or keeps global state, so tests run commands in parallel.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/term"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/dstackai/dstack-go/cmd/dstack/internal/cli.Version=v0.1.0".
var Version = ""

// Streams are the command's standard streams.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Exit codes shared by the commands.
const (
	ExitOK      = 0
	ExitInvalid = 1
	// ExitChanged is returned by `fmt -check` when a file would change
	// (3, as terraform fmt does).
	ExitChanged = 3
	// ExitRunFailed is returned by apply when a run it followed (apply -f
	// without -d) ended in failure: a task's job exited non-zero, or was
	// stopped or lost before it finished.
	ExitRunFailed = 4
)

type command struct {
	name     string
	synopsis string
	run      func(args []string, s Streams, env Env) int
}

// Env is the process environment as given to Run.
type Env []string

// Get returns an environment variable's value.
func (e Env) Get(key string) (string, bool) {
	for _, kv := range e {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func commands() []command {
	return []command{
		{"validate", "Check configuration files for errors", runValidate},
		{"fmt", "Rewrite HCL configuration files in canonical format", runFmt},
		{"schema", "Print the JSON Schema of the YAML configuration format", runSchema},
		{"plan", "Show what apply would change, with offers and prices", runPlan},
		{"apply", "Carry out a plan (made now, or saved with plan -out)", runApply},
		{"destroy", "Tear down everything in the state", runDestroy},
		{"show", "Show a saved plan, or the state", runShow},
		{"ps", "List runs and their jobs", runPS},
		{"logs", "Print a run's output", runLogs},
		{"stop", "Stop a run's jobs", runStop},
		{"attach", "Forward a run's ports to localhost and follow its output", runAttach},
		{"fleet", "List fleets, or delete one: fleet [list], fleet delete NAME", runFleet},
		{"volume", "List volumes, or delete one: volume [list], volume delete NAME", runVolume},
		{"gateway", "List gateways, or delete one: gateway [list], gateway delete NAME", runGateway},
		{"delete", "Delete what a configuration file declares, or resources by name", runDelete},
		{"metrics", "Show a run's CPU, memory and GPU use, per job", runMetrics},
		{"graph", "Print the action graph in Graphviz DOT", runGraph},
		{"output", "Print what the state records about each resource", runOutput},
		{"offer", "List the machines that match a resources spec, cheapest first", runOffer},
		{"init", "Choose the state backend (and migrate state between backends)", runInit},
		{"state", "Inspect and edit the state: list, show, pull, push, rm, mv", runState},
		{"workspace", "Manage workspaces: list, show, new, select, delete", runWorkspace},
		{"force-unlock", "Break a state lock whose run is gone", runForceUnlock},
		{"secret", "Manage the team's secrets: set, get, list, delete, rotate-key", runSecret},
		{"token", "Manage the tokens services accept: create, list, revoke", runToken},
		{"server", "Run the control loop that keeps the state's runs as applied", runServer},
		{"version", "Print the version", runVersion},
	}
}

// Run executes a dstack command line (without the program name) and
// returns the exit code.
func Run(args []string, s Streams, env []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(s.Stdout)
		if len(args) == 0 {
			return ExitInvalid
		}
		return ExitOK
	}
	if args[0] == "-version" || args[0] == "--version" {
		return runVersion(nil, s, env)
	}
	if args[0] == "agent" {
		// This machine's agent, which the CLI starts detached for the
		// local backend; not listed in the help.
		return runAgent(args[1:], s)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], s, Env(env))
		}
	}
	names := []string{}
	for _, c := range commands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(s.Stderr, "dstack: unknown command %q", args[0])
	if sug := suggest(args[0], names); sug != "" {
		fmt.Fprintf(s.Stderr, "; did you mean %q?", sug)
	}
	fmt.Fprintln(s.Stderr, "\nRun 'dstack help' for the list of commands.")
	return ExitInvalid
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: dstack <command> [options] [args]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintln(w, "\nRun 'dstack <command> -h' for a command's options.")
}

// parseFlags parses flags that may come before, between and after the
// positional arguments (`dstack validate examples/ -json`), as users of
// other CLIs expect. "--" ends flag parsing.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name, usageLine string, s Streams) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(s.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(s.Stderr, "Usage: dstack %s\n\nOptions:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitInvalid
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// useColor decides whether output to w is coloured: only on a terminal,
// never with NO_COLOR set or -no-color given.
func useColor(w io.Writer, env Env, noColor bool) bool {
	if noColor {
		return false
	}
	if v, ok := env.Get("NO_COLOR"); ok && v != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 20 {
			return min(width-2, 120)
		}
	}
	return 78
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func runVersion(args []string, s Streams, _ Env) int {
	fs := newFlagSet("version", "version [-json]", s)
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *asJSON {
		fmt.Fprintf(s.Stdout, "{\n  \"version\": %q,\n  \"go\": %q,\n  \"platform\": \"%s_%s\"\n}\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return ExitOK
	}
	fmt.Fprintf(s.Stdout, "dstack %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}
