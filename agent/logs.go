package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// logChunk is the most one read of a log takes. Large reads keep a stream
// at hundreds of MB/s: a mebibyte copies from the page cache in well under
// a millisecond, and the HTTP server flushes once per chunk, not per line.
const logChunk = 1 << 20

// logPoll is how often a follower at the end of a running job's log looks
// for more; it bounds the delay a follower adds to a line.
const logPoll = 50 * time.Millisecond

// ErrLogGap means the size cap dropped log bytes before a follower read
// them. The follower can resume from its offset: reading resumes at the
// oldest byte kept (see Job.LogDropped).
var ErrLogGap = errors.New("the log's size cap dropped bytes before they were read")

// LogReader reads one job's log from an offset. It is not safe for
// concurrent use.
type LogReader struct {
	j   *job
	f   *os.File
	off int64
	buf []byte
}

// OpenLog opens a job's log for reading at byte offset since, or at the
// oldest byte kept when the size cap has dropped the bytes before since.
func (m *Manager) OpenLog(id string, since int64) (*LogReader, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	dropped := j.dropped.Load()
	f, err := os.Open(j.logPath())
	if err != nil {
		return nil, fmt.Errorf("job %s: open log: %w", id, err)
	}
	return &LogReader{j: j, f: f, off: max(since, dropped, 0), buf: make([]byte, logChunk)}, nil
}

// Offset is the offset of the next byte Next returns.
func (r *LogReader) Offset() int64 { return r.off }

// Close closes the log file.
func (r *LogReader) Close() error { return r.f.Close() }

// Next returns the next bytes of the log, at most 1 MiB, valid until the
// next call. At the end of what has been written it returns io.EOF, unless
// follow is set and the job has not ended: then it waits for more output,
// or for the job's end, or for ctx's. It returns ErrLogGap when the size
// cap dropped bytes at Offset.
func (r *LogReader) Next(ctx context.Context, follow bool) ([]byte, error) {
	var poll *time.Ticker
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	for {
		// Look at the job before reading: if it had ended, its output was
		// complete (Handle.Wait promises so) and this read drains it.
		ended := r.ended()
		n, err := r.f.ReadAt(r.buf, r.off)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read log: %w", err)
		}
		if r.j.dropped.Load() > r.off {
			// Trimmed under the reader: what was read may be the hole.
			return nil, ErrLogGap
		}
		if n > 0 {
			r.off += int64(n)
			return r.buf[:n], nil
		}
		if !follow || ended {
			return nil, io.EOF
		}
		if poll == nil {
			poll = time.NewTicker(logPoll)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.j.done:
		case <-poll.C:
		}
	}
}

func (r *LogReader) ended() bool {
	select {
	case <-r.j.done:
		return true
	default:
		return false
	}
}

// trimLog enforces the log cap on one job (see Manager): past the cap it
// keeps the newest three quarters of it, starting at a line, and frees the
// rest. The caller holds m.mu.
func (m *Manager) trimLog(j *job) {
	fi, err := os.Stat(j.logPath())
	if err != nil {
		return
	}
	r := &j.rec.Job
	size := fi.Size()
	if size-r.LogDropped <= m.logLimit {
		return
	}
	f, err := os.OpenFile(j.logPath(), os.O_RDWR, 0)
	if err != nil {
		m.log.Warn("open log to trim", "job", r.Spec.ID, "err", err)
		return
	}
	defer f.Close()
	start := size - m.logLimit*3/4
	// Begin the kept part at a line, if one starts soon enough.
	line := make([]byte, 64<<10)
	if n, _ := f.ReadAt(line, start); n > 0 {
		if i := bytes.IndexByte(line[:n], '\n'); i >= 0 {
			start += int64(i) + 1
		}
	}
	old := r.LogDropped
	r.LogDropped = start
	j.dropped.Store(start) // before the punch: readers check it after reading
	if err := punchHole(f, old, start); err != nil && !j.warnedPunch {
		j.warnedPunch = true
		m.log.Warn("cannot free the dropped part of a log; it stays on disk", "job", r.Spec.ID, "err", err)
	}
	m.persist(j)
}
