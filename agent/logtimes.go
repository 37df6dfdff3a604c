package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A job's output has no timestamps of its own (a host process writes its
// log file directly), so the manager keeps a time index beside it:
// output.times, a line "UNIXNANO OFFSET" each time it sees the log has
// grown, at most every logTimesInterval, and once more when the job ends.
// An entry says that at that time the log held OFFSET bytes, so the bytes
// after it were written later. Reading a log from a point in time
// (GET /jobs/{id}/logs?since_time=) starts at the last entry before that
// time, moved on to the next line start: it is exact to within one
// interval. Output written while the agent was down is dated when the
// agent is back.

// logTimesInterval is how often the manager looks at running jobs' logs
// for the time index: the precision of reading a log from a time.
const logTimesInterval = 200 * time.Millisecond

func (j *job) timesPath() string { return filepath.Join(j.dir, "output.times") }

// indexLogs records the growth of running jobs' logs until Close.
func (m *Manager) indexLogs() {
	defer m.watchers.Done()
	t := time.NewTicker(logTimesInterval)
	defer t.Stop()
	for {
		select {
		case <-m.lifetime.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		for _, j := range m.jobs {
			if !j.rec.Job.State.Finished() {
				m.indexLog(j)
			}
		}
		m.mu.Unlock()
	}
}

// indexLog appends an entry to the job's time index when its log has
// grown since the last one. The caller holds m.mu.
func (m *Manager) indexLog(j *job) {
	fi, err := os.Stat(j.logPath())
	if err != nil || fi.Size() <= j.indexed {
		return
	}
	f, err := os.OpenFile(j.timesPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		if !j.warnedTimes {
			j.warnedTimes = true
			m.log.Warn("cannot write the log's time index", "job", j.rec.Job.Spec.ID, "err", err)
		}
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d %d\n", time.Now().UnixNano(), fi.Size()); err != nil {
		if !j.warnedTimes {
			j.warnedTimes = true
			m.log.Warn("cannot write the log's time index", "job", j.rec.Job.Spec.ID, "err", err)
		}
		return
	}
	j.indexed = fi.Size()
}

// LogOffsetAt is the offset in a job's log of the first line written at
// or after t (to within logTimesInterval): where reading the log from t
// starts. A time before the job's output gives 0; one after the end, the
// log's size.
func (m *Manager) LogOffsetAt(id string, t time.Time) (int64, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	if ok && !j.rec.Job.State.Finished() {
		// Bring the index up to now: what the log holds was written
		// before this moment.
		m.indexLog(j)
	}
	m.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	off, err := timesOffset(j.timesPath(), t)
	if err != nil {
		return 0, fmt.Errorf("job %s: log time index: %w", id, err)
	}
	if off == 0 {
		return 0, nil
	}
	// Start at a line: skip the rest of one the entry cut through (it
	// began before t).
	f, err := os.Open(j.logPath())
	if err != nil {
		return 0, fmt.Errorf("job %s: open log: %w", id, err)
	}
	defer f.Close()
	var prev [1]byte
	if _, err := f.ReadAt(prev[:], off-1); err != nil || prev[0] == '\n' {
		return off, nil
	}
	buf := make([]byte, 64<<10)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("job %s: read log: %w", id, err)
	}
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		return off + int64(i) + 1, nil
	}
	return off, nil // a line longer than we look: start inside it
}

// timesOffset reads a time index and returns the offset of its last
// entry before t, 0 when there is none. (t is compared as a time: its
// unix nanoseconds overflow past the year 2262.)
func timesOffset(path string, t time.Time) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		at, size, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue // a torn last line
		}
		ns, err1 := strconv.ParseInt(at, 10, 64)
		n, err2 := strconv.ParseInt(size, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if !time.Unix(0, ns).Before(t) {
			break
		}
		off = max(off, n)
	}
	return off, sc.Err()
}
