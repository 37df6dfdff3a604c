package s3test

import "syscall"

// sysProcAttr kills the server when the test binary dies without running
// its cleanups (a panic, a -timeout), so no gateway is left listening.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
