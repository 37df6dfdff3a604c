package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

// Operations that can take long (provisioning machines, pulling images,
// waiting for capacity) are bounded by the resource's timeouts block,
// as Terraform providers conventionally let them be:
//
//	timeouts {
//	  create = "30m"
//	  delete = "10m"
//	}
//
// An operation with no timeout set runs until it ends or Terraform is
// interrupted.

const blockTimeouts = "timeouts"

// The operations a timeout bounds.
const (
	opCreate = "create"
	opUpdate = "update"
	opDelete = "delete"
)

var timeoutsBlock = tfplugin.NestedBlock{
	Name:    blockTimeouts,
	Nesting: tfplugin.Single,
	Block: tfplugin.Block{
		Description: "How long the provider waits for an operation on the resource before it gives up with an error. " +
			"Each is a duration such as `\"30s\"`, `\"10m\"` or `\"1h30m\"`; an operation without one runs until it ends.",
		Attributes: []tfplugin.Attribute{
			{Name: opCreate, Type: tfplugin.StringType, Optional: true, Description: "How long making the resource may take: provisioning its machines, starting its jobs."},
			{Name: opUpdate, Type: tfplugin.StringType, Optional: true, Description: "How long changing the resource in place, or replacing a run's jobs, may take."},
			{Name: opDelete, Type: tfplugin.StringType, Optional: true, Description: "How long destroying the resource may take: stopping its jobs, terminating its machines."},
		},
	},
}

// timeoutOf reads the timeout of op from a resource's value: zero when
// none is set. A value that is not a positive duration is an error
// diagnostic on its attribute.
func timeoutOf(obj map[string]any, op string) (time.Duration, tfplugin.Diagnostics) {
	t, _ := obj[blockTimeouts].(map[string]any)
	s, ok := t[op].(string)
	if !ok {
		return 0, nil // unset, or not known yet
	}
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("it must be positive")
	}
	if err != nil {
		return 0, tfplugin.Diagnostics{{Severity: tfplugin.Error, Summary: fmt.Sprintf("Invalid %s timeout", op),
			Detail: fmt.Sprintf("%q is not a duration such as \"30s\", \"10m\" or \"1h30m\": %v.", s, err),
			Path:   tfplugin.Path{blockTimeouts, op}}}
	}
	return d, nil
}

func validateTimeouts(obj map[string]any) tfplugin.Diagnostics {
	var diags tfplugin.Diagnostics
	for _, op := range []string{opCreate, opUpdate, opDelete} {
		_, ds := timeoutOf(obj, op)
		diags = append(diags, ds...)
	}
	return diags
}

// timeoutError is the cause of an operation's context when its timeout
// passed.
type timeoutError struct {
	op   string
	addr string
	d    time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s of %s timed out after %s (timeouts.%s)", e.op, e.addr, e.d, e.op)
}

// withTimeout bounds ctx by the timeout of op set in obj, if any.
func withTimeout(ctx context.Context, obj map[string]any, op, addr string) (context.Context, context.CancelFunc) {
	d, diags := timeoutOf(obj, op)
	if d == 0 || diags.HasErrors() {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, &timeoutError{op: op, addr: addr, d: d})
}

// timedOut rewrites the error diagnostics of an operation whose timeout
// passed to say so first: the failure underneath (a cancelled provider
// call) is the detail.
func timedOut(ctx context.Context, diags tfplugin.Diagnostics) tfplugin.Diagnostics {
	var te *timeoutError
	if !errors.As(context.Cause(ctx), &te) {
		return diags
	}
	out := make(tfplugin.Diagnostics, 0, len(diags)+1)
	found := false
	for _, d := range diags {
		if d.Severity == tfplugin.Error {
			d.Detail = fmt.Sprintf("The %s timeout (%s) passed before the operation finished; set a longer one in the resource's timeouts block. %s: %s", te.op, te.d, d.Summary, d.Detail)
			d.Summary = capitalize(te.Error())
			found = true
		}
		out = append(out, d)
	}
	if !found {
		// The operation ended just as the timeout passed.
		return diags
	}
	return out
}
