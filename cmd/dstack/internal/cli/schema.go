package cli

import (
	"fmt"

	"github.com/dstackai/dstack-go/lang"
)

func runSchema(args []string, s Streams, _ Env) int {
	fs := newFlagSet("schema", "schema\n\nPrints the JSON Schema (2020-12) of the YAML configuration format, for\neditors' YAML language servers (yaml.schemas in VS Code).", s)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	b, err := lang.Schema()
	if err != nil {
		fmt.Fprintf(s.Stderr, "dstack: %v\n", err)
		return ExitInvalid
	}
	fmt.Fprintf(s.Stdout, "%s\n", b)
	return ExitOK
}
