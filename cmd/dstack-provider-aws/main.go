// Command dstack-provider-aws serves the aws backend's EC2 calls to
// dstack over its standard input and output (see package
// providers/aws), so that the AWS SDK is linked into this program only.
// dstack starts it when a command needs the aws backend.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/aws/ec2api"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "dstack-provider-aws is started by dstack and speaks to it over its standard input and output; it takes no arguments")
		os.Exit(2)
	}
	err := aws.Serve(os.Stdin, os.Stdout, func(ctx context.Context, s aws.Settings) (aws.Cloud, error) {
		return ec2api.New(ctx, s)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dstack-provider-aws:", err)
		os.Exit(1)
	}
}
