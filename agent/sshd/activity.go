package sshd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ActivityFile is the file in the server's directory where it records
// its connections, for the agent's inactivity check: two lines,
// "open N" (connections open now) and "last UNIXNANO" (when the last
// connection closed, or when the server started).
const ActivityFile = "activity"

// Activity is what the activity file says.
type Activity struct {
	Open int
	Last time.Time
}

// ReadActivity reads an activity file. A file that does not exist is
// fs.ErrNotExist (the server has not started yet).
func ReadActivity(path string) (Activity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Activity{}, err
	}
	var a Activity
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Activity{}, fmt.Errorf("activity file %s: bad line %q", path, line)
		}
		switch k {
		case "open":
			a.Open = int(n)
			seen++
		case "last":
			a.Last = time.Unix(0, n)
			seen++
		}
	}
	if seen != 2 {
		return Activity{}, errors.New("activity file " + path + " is incomplete")
	}
	return a, nil
}

// activity counts open connections and writes the file on every change.
type activity struct {
	mu   sync.Mutex
	path string // "": not recorded
	open int
	last time.Time
}

func (a *activity) add(d int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.open += d
	if d < 0 || a.last.IsZero() {
		a.last = time.Now()
	}
	if a.path == "" {
		return
	}
	// Written to a temporary name and renamed, so a reader never sees
	// half a file.
	tmp := a.path + ".tmp"
	data := fmt.Sprintf("open %d\nlast %d\n", a.open, a.last.UnixNano())
	if err := os.WriteFile(tmp, []byte(data), 0o644); err == nil {
		_ = os.Rename(tmp, a.path)
	}
}

func activityPath(dir string) string { return filepath.Join(dir, ActivityFile) }
