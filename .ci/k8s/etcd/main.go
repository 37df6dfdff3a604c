// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 for
// the tests' cluster (the etcd module's own main is in a module that
// cannot be installed with go install).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
