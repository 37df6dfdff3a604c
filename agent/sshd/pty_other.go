//go:build !linux

package sshd

import (
	"errors"
	"os"
)

// openPTY is Linux-only: jobs' containers are Linux.
func openPTY() (ctl, tty *os.File, err error) {
	return nil, nil, errors.New("terminals are supported on Linux only")
}

func setWinsize(*os.File, uint32, uint32) {}
