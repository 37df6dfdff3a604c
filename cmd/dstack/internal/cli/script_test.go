package cli

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run `dstack` as a real process (the test
// binary re-executed), so exit codes and streams are what users see.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dstack": func() {
			os.Exit(Run(os.Args[1:], Streams{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Environ()))
		},
	})
}

// TestScripts runs testdata/script/*.txtar. UPDATE_SCRIPTS=1 rewrites the
// expected output in place; review the diff like code.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") == "1",
		RequireExplicitExec: false,
	})
}
