//go:build !linux

package agent

import (
	"errors"
	"os"
)

// punchHole is Linux-only; elsewhere the dropped part of a log stays on
// disk (readers still skip it).
func punchHole(*os.File, int64, int64) error { return errors.ErrUnsupported }
