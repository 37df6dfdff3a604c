package host

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the runtime reads of /proc/<pid>/stat (proc(5)).
type procStat struct {
	state     byte   // R, S, D, Z (zombie), X (dead), ...
	pgrp      int    // process group
	ticks     uint64 // utime+stime+cutime+cstime, in clock ticks
	startTime uint64 // since boot, in clock ticks: with the PID, names a process
	rssPages  int64
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(data)
}

// parseStat parses a stat line. The command name (field 2) is in
// parentheses and may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 > len(data) {
		return procStat{}, errors.New("malformed stat line")
	}
	// f[0] is field 3 (state), so field n is f[n-3].
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 22 {
		return procStat{}, errors.New("short stat line")
	}
	num := func(n int) uint64 {
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	pgrp, _ := strconv.Atoi(f[5-3])
	rss, _ := strconv.ParseInt(f[24-3], 10, 64)
	return procStat{
		state:     f[0][0],
		pgrp:      pgrp,
		ticks:     num(14) + num(15) + num(16) + num(17),
		startTime: num(22),
		rssPages:  rss,
	}, nil
}

// live reports whether the stat is of a process that still runs: a zombie
// has ended, it only waits for its parent to reap it.
func (s procStat) live() bool { return s.state != 'Z' && s.state != 'X' }

// groupMember is one live process of a job's process group.
type groupMember struct {
	pid  int
	stat procStat
}

// groupMembers lists the live processes of process group pgid that started
// no earlier than minStart: a group ID can be reused once the whole group
// has gone, and a process started before the job cannot belong to it.
func groupMembers(pgid int, minStart uint64) ([]groupMember, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var members []groupMember
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid || st.startTime < minStart || !st.live() {
			continue // gone meanwhile, or not ours
		}
		members = append(members, groupMember{pid: pid, stat: st})
	}
	return members, nil
}

// bootID names the current boot: start times count from boot, so a PID and
// start time name a process only within one boot.
func bootID() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// clockTicks is the kernel's USER_HZ, the unit of the times in stat. The
// kernel passes it to every process in the auxiliary vector (AT_CLKTCK);
// it is 100 on every common Linux build, the fallback.
func clockTicks() float64 {
	const atClkTck = 17
	data, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for len(data) >= 16 {
		key, val := binary.NativeEndian.Uint64(data), binary.NativeEndian.Uint64(data[8:])
		if key == atClkTck && val > 0 {
			return float64(val)
		}
		if key == 0 {
			break
		}
		data = data[16:]
	}
	return 100
}
