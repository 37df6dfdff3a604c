// Package detach starts a helper program (the local agent, the gateway)
// in a session of its own, so that it outlives the command that started
// it, and waits until it answers.
package detach

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Start starts cmd in its own session with its output appended to
// logPath, then calls probe every 50 ms until it reports the program up,
// and returns what probe returned. what names the program in errors. A
// program that exits at start is probed once more: another command may
// have started one at the same time, and that one answers.
func Start[T any](ctx context.Context, cmd *exec.Cmd, logPath, what string, timeout time.Duration, probe func(context.Context) (T, bool)) (T, error) {
	var zero T
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return zero, fmt.Errorf("opening the %s log: %w", what, err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the program must not die with the one that started
	// it (Terraform stops its plugins when a command ends).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return zero, fmt.Errorf("starting the %s: %w", what, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if v, ok := probe(ctx); ok {
			return v, nil
		}
		select {
		case err := <-exited:
			if v, ok := probe(ctx); ok {
				return v, nil
			}
			return zero, fmt.Errorf("the %s exited at start (%v); see %s", what, err, logPath)
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return zero, fmt.Errorf("the %s did not answer within %s; see %s", what, timeout, logPath)
}
