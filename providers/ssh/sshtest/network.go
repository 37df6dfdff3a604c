package sshtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How names are made. A cluster's ID is idPrefix and idRandLen random
// characters; every name the cluster creates starts with it, and all IDs
// have the same length, so a name belongs to exactly one cluster. The
// longest link name, ID + "u" + three digits, is 12 characters (Linux
// allows 15).
const (
	idPrefix      = "dsh"
	idRandLen     = 5
	idChars       = "abcdefghijklmnopqrstuvwxyz0123456789"
	commentPrefix = "dstack-sshtest:"
	maxHosts      = 100
	firstHost     = 10 // hosts are .10, .11, ... on both networks

	// stateDir holds one file per live cluster, "<ID>.lock", flock-ed by
	// the process that owns the cluster, and global.lock, which serialises
	// sweeping and the choice of IDs and subnets between processes.
	stateDir = "/run/dstack-sshtest"
)

// The networks are 10.213.N.0/24 (public) and 10.214.N.0/24 (private) for
// the first N, tried from a random start, where neither overlaps a route
// or address of this machine.
var publicBase, privateBase = [2]byte{10, 213}, [2]byte{10, 214}

func (c *Cluster) publicBridge() string  { return c.ID + "pub" }
func (c *Cluster) privateBridge() string { return c.ID + "prv" }

// setupNetworks reserves an ID and a pair of subnets, sweeps what crashed
// runs left behind, and creates the two bridges, the unreachable route for
// the private subnet and the iptables rules. It holds the global lock
// throughout, so two processes never pick the same subnet.
func (c *Cluster) setupNetworks() error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	global, err := os.OpenFile(filepath.Join(stateDir, "global.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("global lock: %w", err)
	}
	defer global.Close() // releases the lock
	if err := flock(global, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("global lock: %w", err)
	}

	sweep(c.logf, c.tools)

	if err := c.reserveID(); err != nil {
		return err
	}
	n, err := pickSubnet(c.tools)
	if err != nil {
		return err
	}
	c.PublicSubnet = fmt.Sprintf("%d.%d.%d.0/24", publicBase[0], publicBase[1], n)
	c.PrivateSubnet = fmt.Sprintf("%d.%d.%d.0/24", privateBase[0], privateBase[1], n)
	c.Gateway = fmt.Sprintf("%d.%d.%d.1", publicBase[0], publicBase[1], n)
	// Record the route before creating it, so a sweep can remove it.
	if _, err := fmt.Fprintf(c.lock, "route %s\n", c.PrivateSubnet); err != nil {
		return fmt.Errorf("writing %s: %w", c.lock.Name(), err)
	}
	c.route = c.PrivateSubnet

	pub, prv := c.publicBridge(), c.privateBridge()
	comment := commentPrefix + c.ID
	steps := [][]string{
		{c.tools.ip, "link", "add", pub, "type", "bridge"},
		{c.tools.ip, "addr", "add", c.Gateway + "/24", "dev", pub},
		{c.tools.ip, "link", "set", pub, "up"},
		{c.tools.ip, "link", "add", prv, "type", "bridge"},
		// No IPv6 link-local address either: this machine has no address
		// at all on the private network.
		{c.tools.ip, "link", "set", prv, "addrgenmode", "none"},
		{c.tools.ip, "link", "set", prv, "up"},
		// Without an address on the private bridge, this machine would send
		// packets for the private subnet to its default route and a dial
		// would hang; this makes it fail at once.
		{c.tools.ip, "route", "add", "unreachable", c.PrivateSubnet},
		// Docker sets the FORWARD policy to DROP and loads br_netfilter,
		// which passes bridged frames through iptables: let each bridge
		// forward between its own ports. INPUT and OUTPUT matter only
		// where their policy is DROP; the test process talks to the public
		// legs through them.
		{c.tools.iptables, "-w", "-I", "FORWARD", "-i", prv, "-o", prv, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
		{c.tools.iptables, "-w", "-I", "FORWARD", "-i", pub, "-o", pub, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
		{c.tools.iptables, "-w", "-I", "INPUT", "-i", pub, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
		{c.tools.iptables, "-w", "-I", "OUTPUT", "-o", pub, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
	}
	for _, s := range steps {
		if _, err := run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("setting up networks: %w", err)
		}
	}
	return nil
}

// reserveID picks an unused ID and takes the lock on its state file. The
// caller holds the global lock.
func (c *Cluster) reserveID() error {
	for range 100 {
		b := make([]byte, idRandLen)
		for i := range b {
			b[i] = idChars[rand.IntN(len(idChars))]
		}
		id := idPrefix + string(b)
		f, err := os.OpenFile(filepath.Join(stateDir, id+".lock"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reserving a cluster ID: %w", err)
		}
		if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("reserving a cluster ID: %w", err)
		}
		c.ID, c.lock = id, f
		return nil
	}
	return errors.New("reserving a cluster ID: no free ID after 100 tries")
}

// sweep removes the clusters of processes that died without cleaning up:
// those whose state file nobody holds a lock on. The caller holds the
// global lock, so no cluster is between creating its state file and
// locking it.
func sweep(logf func(string, ...any), tl tools) {
	paths, _ := filepath.Glob(filepath.Join(stateDir, idPrefix+"*.lock"))
	for _, path := range paths {
		id := strings.TrimSuffix(filepath.Base(path), ".lock")
		if len(id) != len(idPrefix)+idRandLen {
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue // removed meanwhile by its owner
		}
		if flock(f, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // alive
			continue
		}
		var route string
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if r, ok := strings.CutPrefix(line, "route "); ok {
					route = strings.TrimSpace(r)
				}
			}
		}
		if err := teardown(tl, id, route); err != nil {
			logf("sshtest: removing leftovers of crashed cluster %s: %v", id, err)
		} else {
			logf("sshtest: removed leftovers of crashed cluster %s", id)
			os.Remove(path)
		}
		f.Close()
	}
}

// teardown removes everything cluster id created: it kills every process
// in its network namespaces, deletes the namespaces, its links and
// bridges, its iptables rules and the unreachable route (when route is not
// ""). It finds them by name, so it works for a crashed run too, and it
// carries on past errors, returning them all.
func teardown(tl tools, id, route string) error {
	var errs []error
	out, err := run(tl.ip, "netns", "list")
	if err != nil {
		errs = append(errs, err)
	}
	var namespaces []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], id+"-") {
			namespaces = append(namespaces, f[0])
		}
	}
	for _, ns := range namespaces {
		if err := killAll(tl, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range namespaces {
		if _, err := run(tl.ip, "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}

	// Deleting a namespace destroys its end of each veth pair, and with it
	// ours, but asynchronously: delete ours (veths first, then bridges)
	// so that they are gone when this returns.
	if out, err := run(tl.ip, "-o", "link", "show"); err != nil {
		errs = append(errs, err)
	} else {
		var veths, bridges []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			switch {
			case !strings.HasPrefix(name, id):
			case strings.HasSuffix(name, "pub"), strings.HasSuffix(name, "prv"):
				bridges = append(bridges, name)
			default:
				veths = append(veths, name)
			}
		}
		for _, name := range append(veths, bridges...) {
			if _, err := run(tl.ip, "link", "delete", name); err != nil && !linkGone(tl, name) {
				errs = append(errs, err)
			}
		}
	}

	if out, err := run(tl.iptables, "-w", "-S"); err != nil {
		errs = append(errs, err)
	} else {
		comment := commentPrefix + id
		for _, line := range strings.Split(out, "\n") {
			args := splitRule(line)
			if len(args) < 2 || args[0] != "-A" || !hasComment(args, comment) {
				continue
			}
			args[0] = "-D"
			if _, err := run(tl.iptables, append([]string{"-w"}, args...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}

	if route != "" {
		if _, err := run(tl.ip, "route", "delete", "unreachable", route); err != nil {
			// Gone already (a crash before it was added, or a second sweep)?
			if out, lerr := run(tl.ip, "route", "show", "type", "unreachable", route); lerr != nil || strings.TrimSpace(out) != "" {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// killAll SIGKILLs every process in network namespace ns until none is
// left: processes that SSH sessions started (nohup, setsid) included.
func killAll(tl tools, ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := run(tl.ip, "netns", "pids", ns)
		if err != nil {
			return err
		}
		pids := strings.Fields(out)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("network namespace %s: processes %s survive SIGKILL", ns, strings.Join(pids, " "))
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkGone reports whether link name no longer exists.
func linkGone(tl tools, name string) bool {
	_, err := run(tl.ip, "link", "show", "dev", name)
	return err != nil
}

// hasComment reports whether rule arguments args carry "--comment comment".
func hasComment(args []string, comment string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--comment" && args[i+1] == comment {
			return true
		}
	}
	return false
}

// splitRule splits a line of `iptables -S` into arguments, undoing its
// double quotes (and backslash escapes inside them).
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			quoted = !quoted
			inArg = true
		case !quoted && (ch == ' ' || ch == '\t'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(ch)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// pickSubnet returns an N for which neither network overlaps a route or
// an address of this machine (the default route aside).
func pickSubnet(tl tools) (int, error) {
	used, err := usedPrefixes(tl)
	if err != nil {
		return 0, err
	}
	start := rand.IntN(256)
	for k := range 256 {
		n := (start + k) % 256
		pub := netip.PrefixFrom(netip.AddrFrom4([4]byte{publicBase[0], publicBase[1], byte(n), 0}), 24)
		prv := netip.PrefixFrom(netip.AddrFrom4([4]byte{privateBase[0], privateBase[1], byte(n), 0}), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(pub) || u.Overlaps(prv) {
				free = false
				break
			}
		}
		if free {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no free subnet pair in %d.%d.0.0/16 and %d.%d.0.0/16",
		publicBase[0], publicBase[1], privateBase[0], privateBase[1])
}

// usedPrefixes lists the IPv4 prefixes of this machine's routes (all
// tables) and addresses.
func usedPrefixes(tl tools) ([]netip.Prefix, error) {
	var used []netip.Prefix
	add := func(s string) {
		if s == "default" {
			return
		}
		if !strings.Contains(s, "/") {
			s += "/32"
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			used = append(used, p.Masked())
		}
	}
	routes, err := run(tl.ip, "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	routeTypes := map[string]bool{
		"unicast": true, "local": true, "broadcast": true, "multicast": true, "anycast": true,
		"unreachable": true, "blackhole": true, "prohibit": true, "throw": true, "nat": true,
	}
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && routeTypes[f[0]] {
			f = f[1:]
		}
		if len(f) > 0 {
			add(f[0])
		}
	}
	addrs, err := run(tl.ip, "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(addrs, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				add(f[i+1])
			}
		}
	}
	return used, nil
}

// flock applies flock(2) operation how to f, retrying on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
