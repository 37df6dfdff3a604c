// Package inventory reports what a host offers: CPUs, memory, disk, GPUs
// (NVIDIA through nvidia-smi, AMD through rocm-smi), Google TPUs (PCI
// devices behind /dev/accel* and /dev/vfio/*), and whether Docker answers.
// The agent serves it as GET /inventory; the host runtime uses
// [NvidiaUsage] for job metrics.
//
// The vendor tools are looked up on PATH and run with a timeout; a host
// without them simply has no GPUs of that vendor. A tool that is present
// but fails is an error, since a GPU machine that reports no GPUs would be
// planned wrongly.
package inventory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/agent"
)

// toolTimeout bounds one run of nvidia-smi or rocm-smi; both answer in well
// under a second on a healthy host and hang on a wedged driver.
const toolTimeout = 30 * time.Second

// Options say where to look.
type Options struct {
	// DataDir is where the agent keeps its data: the disk reported is the
	// file system holding it. Empty means "/".
	DataDir string
	// DockerSocket is the Docker Engine's socket; empty means the one
	// DOCKER_HOST names (unix://...) or /var/run/docker.sock.
	DockerSocket string
	// Root prefixes /proc, /sys and /dev, for tests; empty means "/".
	Root string
}

// Collect reports the host. It returns what it could find together with
// the errors of the parts that failed.
func Collect(ctx context.Context, opts Options) (agent.Inventory, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	inv := agent.Inventory{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	var errs []error
	var err error
	if inv.Hostname, err = os.Hostname(); err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	}
	if inv.MemoryMB, err = memTotalMB(filepath.Join(root, "proc/meminfo")); err != nil {
		errs = append(errs, err)
	}
	if inv.DiskMB, inv.DiskFreeMB, err = disk(cmpOr(opts.DataDir, "/")); err != nil {
		errs = append(errs, err)
	}
	nvidia, err := NvidiaGPUs(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	amd, err := AMDGPUs(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	inv.GPUs = append(nvidia, amd...)
	inv.TPUs = TPUs(root)
	inv.Docker = dockerReachable(ctx, opts.DockerSocket)
	inv.Addresses = addresses()
	return inv, errors.Join(errs...)
}

// addresses lists the host's IP addresses but loopback and link-local
// ones, IPv4 first.
func addresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var v4, v6 []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || n.IP.IsLinkLocalMulticast() {
			continue
		}
		if n.IP.To4() != nil {
			v4 = append(v4, n.IP.String())
		} else {
			v6 = append(v6, n.IP.String())
		}
	}
	return append(v4, v6...)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// memTotalMB reads MemTotal from /proc/meminfo.
func memTotalMB(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("memory: parse MemTotal %q: %w", rest, err)
		}
		return kb / 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("memory: read %s: %w", path, err)
	}
	return 0, fmt.Errorf("memory: no MemTotal in %s", path)
}

// disk reports the size and free space of the file system holding dir.
func disk(dir string) (total, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("disk: statfs %s: %w", dir, err)
	}
	bs := int64(st.Bsize)
	return int64(st.Blocks) * bs >> 20, int64(st.Bavail) * bs >> 20, nil
}

// dockerReachable reports whether the Docker Engine's socket accepts a
// connection.
func dockerReachable(ctx context.Context, socket string) bool {
	if socket == "" {
		socket = "/var/run/docker.sock"
		if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
			socket = h
		}
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// runTool runs a vendor tool found on PATH. found is false when it is not
// on PATH.
func runTool(ctx context.Context, name string, args ...string) (out []byte, found bool, err error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		if msg != "" {
			return nil, true, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, true, fmt.Errorf("%s: %w", name, err)
	}
	return out, true, nil
}
