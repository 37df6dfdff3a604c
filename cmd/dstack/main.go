// Command dstack declares GPU fleets, tasks, services and dev
// environments and carries them out, Terraform-style.
package main

import (
	"os"

	"github.com/dstackai/dstack-go/cmd/dstack/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], cli.Streams{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Environ()))
}
