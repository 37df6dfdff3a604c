package docker

// Following a container's output into the job's log file, resumably: the
// output of jobs that do not write the file themselves (see direct.go),
// and, once a direct job has ended, what its shell said before redirecting
// its output.
//
// There are two sources for the same messages:
//
//   - The Engine's log file, where the Engine runs on this machine with
//     the json-file log driver and no rotation (Docker's default): one JSON
//     object per line ({"log": "...", "stream": "stdout", "time": "..."}),
//     read as it grows. The cursor is the byte offset reached in it: exact,
//     and fast (the logs endpoint below costs the Engine a write and a
//     flush per message, a few MB/s for short lines).
//   - Otherwise, the Engine's logs endpoint: stdout and stderr multiplexed
//     in stdcopy frames, requested with timestamps, exactly one message per
//     frame ("<RFC3339Nano timestamp> <bytes of the line>").
//
// The follower appends the messages' bytes to the job's log in batches and,
// after each batch, records a cursor in a sidecar file next to it
// (<log>.docker-cursor): the offset in the Engine's file, and for the
// endpoint: resume with `since` = S and drop the first K messages the
// Engine sends; and the log file's length.
//
// The endpoint returns, for `since` = S, every message whose timestamp is
// not before S, in the order of the Engine's own log. Timestamps are not
// strictly ordered there (stdout and stderr are stamped by two goroutines
// before either writes), so S is not simply the last timestamp: it is one
// second before it (or later, if that much history is no longer in
// memory), and K counts the messages already consumed that the Engine will
// send again for that S. Both are known exactly from the timestamps of the
// most recent messages, which the follower keeps in a ring.
//
// A handle that reattaches after a crash finds the cursor; if the job's log
// is longer than the cursor says (the agent died between writing a batch
// and its cursor), it is cut back to the cursor's length, and following
// resumes from the cursor: no line is lost or written twice. (Should the
// Engine's file become unreadable between two agents, following goes on
// through the endpoint, exactly unless the switch falls within a second of
// the earlier agent's last batch.)

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

const (
	// CursorSuffix names the sidecar file that holds a log's cursor.
	CursorSuffix = ".docker-cursor"

	ringSize      = 4096
	resumeMargin  = int64(time.Second)
	maxBatch      = 256 << 10
	maxFrame      = 16 << 20
	maxLogRetries = 10
	filePoll      = 50 * time.Millisecond
)

// cursor is where to resume a container's output.
type cursor struct {
	since int64 // endpoint: Unix nanoseconds; 0: from the first message
	skip  int64 // endpoint: messages to drop from the stream that since gives
	size  int64 // length of the job's log when the cursor was written
	off   int64 // the Engine's file: bytes consumed; -1: follow the endpoint
}

const cursorLen = 84 // len(encode()): fixed, so that rewriting in place leaves no tail

func (c cursor) encode() []byte {
	return fmt.Appendf(nil, "v2 %019d %019d %019d %020d\n", c.since, c.skip, c.size, c.off)
}

func decodeCursor(b []byte) (cursor, bool) {
	var c cursor
	if len(b) < cursorLen {
		return c, false
	}
	n, err := fmt.Sscanf(string(b[:cursorLen]), "v2 %d %d %d %d\n", &c.since, &c.skip, &c.size, &c.off)
	if err != nil || n != 4 || c.since < 0 || c.skip < 0 || c.size < 0 || c.off < -1 {
		return cursor{}, false
	}
	return c, true
}

// session tracks the messages read from one source, opened at cursor start.
type session struct {
	start      cursor
	skipLeft   int64 // endpoint: messages still to drop
	carried    int64 // file: messages before the offset that the endpoint would send again for start.since
	ring       [ringSize]int64
	n          int64 // messages received (dropped ones included)
	last       int64 // timestamp of the last message
	maxDropped int64 // newest timestamp that fell out of the ring
}

func newSession(c cursor) *session {
	s := &session{start: c, last: c.since, maxDropped: math.MinInt64}
	if c.off >= 0 {
		s.carried = c.skip
	} else {
		s.skipLeft = c.skip
	}
	return s
}

// add records a message's timestamp and says whether the message is new
// (to be written) rather than one to drop.
func (s *session) add(ts int64) bool {
	i := s.n % ringSize
	if s.n >= ringSize && s.ring[i] > s.maxDropped {
		s.maxDropped = s.ring[i]
	}
	s.ring[i] = ts
	s.n++
	s.last = ts
	if s.skipLeft > 0 {
		s.skipLeft--
		return false
	}
	return true
}

// checkpoint is the cursor after every message received so far; off is
// the offset reached in the Engine's file (-1 on the endpoint).
func (s *session) checkpoint(size, off int64) cursor {
	if s.n == 0 || s.skipLeft > 0 {
		c := s.start
		c.size, c.off = size, off
		return c
	}
	since := max(s.start.since, s.last-resumeMargin)
	if s.maxDropped != math.MinInt64 {
		since = max(since, s.maxDropped+1)
	}
	var skip int64
	for i := int64(0); i < min(s.n, ringSize); i++ {
		if s.ring[i] >= since {
			skip++
		}
	}
	if since == s.start.since {
		skip += s.carried
	}
	return cursor{since: since, skip: skip, size: size, off: off}
}

// logFollower appends a container's output to the job's log.
type logFollower struct {
	cli     *client.Client
	id      string
	out     *os.File // the job's log, opened for appending
	side    *os.File // the cursor
	cur     cursor
	engFile string // the Engine's json-file log, when readable here

	written  atomic.Int64 // bytes appended: progress, for Wait
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	startOne sync.Once
	closeOne sync.Once
	err      error // why following stopped early; read after done
}

// newLogFollower opens logPath for appending and its cursor. fresh starts
// the cursor at the first message of a new container; otherwise the cursor
// on disk is resumed (and the log cut back to it if it ran ahead).
// engFile is the Engine's json-file log of the container where this
// process can read it (see engineLogFile), or "".
func newLogFollower(cli *client.Client, id, logPath string, fresh bool, engFile string) (*logFollower, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("docker: opening the job's log: %w", err)
	}
	side, err := os.OpenFile(logPath+CursorSuffix, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("docker: opening the job's log cursor: %w", err)
	}
	f := &logFollower{cli: cli, id: id, out: out, side: side, engFile: engFile, done: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*logFollower, error) {
		f.cancel()
		out.Close()
		side.Close()
		return nil, fmt.Errorf("docker: job log %s: %w", logPath, err)
	}
	st, err := out.Stat()
	if err != nil {
		return fail(err)
	}
	size := st.Size()
	// Fresh, or resuming without a cursor: everything from the start.
	f.cur = cursor{size: size, off: 0}
	if !fresh {
		buf := make([]byte, cursorLen)
		n, _ := io.ReadFull(side, buf)
		if c, ok := decodeCursor(buf[:n]); ok {
			f.cur = c
			switch {
			case size > c.size:
				// Written after the cursor: the source will give it again.
				if err := out.Truncate(c.size); err != nil {
					return fail(err)
				}
			case size < c.size:
				// Cut by someone else (rotated): resume, keeping what is there.
				f.cur.size = size
			}
		}
	}
	if f.cur.off >= 0 && engFile != "" {
		if st, err := os.Stat(engFile); err != nil || st.Size() < f.cur.off {
			engFile = "" // rotated or gone: the endpoint still has it
		}
	}
	if f.cur.off >= 0 && engFile == "" {
		f.cur.off = -1
	}
	f.engFile = engFile
	if f.cur.off < 0 {
		f.engFile = ""
	}
	if err := f.saveCursor(); err != nil {
		return fail(err)
	}
	return f, nil
}

func (f *logFollower) saveCursor() error {
	_, err := f.side.WriteAt(f.cur.encode(), 0)
	return err
}

// useFile switches a fresh follower, not started yet, to the Engine's
// file (known only once the container has started).
func (f *logFollower) useFile(engFile string) error {
	if engFile == "" {
		return nil
	}
	f.engFile, f.cur.off = engFile, 0
	return f.saveCursor()
}

// start begins following in the background.
func (f *logFollower) start() {
	f.startOne.Do(func() { go f.run() })
}

// close stops following and waits until the files are closed.
func (f *logFollower) close() {
	f.closeOne.Do(func() {
		f.cancel()
		started := true
		f.startOne.Do(func() { started = false })
		if !started {
			f.finish()
			close(f.done)
		}
	})
	<-f.done
}

func (f *logFollower) finish() {
	f.out.Close()
	f.side.Close()
}

func (f *logFollower) run() {
	defer close(f.done)
	defer f.finish()
	if f.cur.off >= 0 {
		err := f.followFile()
		if err == nil || f.ctx.Err() != nil {
			f.err = err
			return
		}
		// The file let us down: go on through the endpoint.
		f.cur.off = -1
		if err := f.saveCursor(); err != nil {
			f.err = err
			return
		}
	}
	wait := 100 * time.Millisecond
	failures := 0
	for {
		before := f.cur
		err := f.followEndpoint()
		if f.ctx.Err() != nil {
			return
		}
		if f.cur != before {
			failures = 0
			wait = 100 * time.Millisecond
		}
		insp, ierr := f.cli.ContainerInspect(f.ctx, f.id)
		if cerrdefs.IsNotFound(ierr) {
			f.err = err
			return
		}
		if err == nil && ierr == nil && !insp.State.Running && !insp.State.Restarting && !insp.State.Paused {
			return // the stream ended because the container did: all of it is in the file
		}
		if err != nil {
			failures++
			if failures >= maxLogRetries || cerrdefs.IsNotImplemented(err) || cerrdefs.IsInvalidArgument(err) {
				f.err = err
				return
			}
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// writeBatch appends batch to the job's log and records the cursor that
// the session gives after it.
func (f *logFollower) writeBatch(batch []byte, s *session, off int64) error {
	if len(batch) > 0 {
		if _, err := f.out.Write(batch); err != nil {
			return err
		}
		f.written.Add(int64(len(batch)))
	}
	st, err := f.out.Stat()
	if err != nil {
		return err
	}
	f.cur = s.checkpoint(st.Size(), off)
	return f.saveCursor()
}

// followEndpoint reads one stream of the logs endpoint from the cursor
// until it ends.
func (f *logFollower) followEndpoint() error {
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	if f.cur.since > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", f.cur.since/1e9, f.cur.since%1e9)
	}
	rc, err := f.cli.ContainerLogs(f.ctx, f.id, opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	return f.copyStream(bufio.NewReaderSize(rc, 64<<10), newSession(f.cur))
}

// copyStream demultiplexes the endpoint's stream into the job's log,
// batching writes and flushing before every read that could block.
func (f *logFollower) copyStream(br *bufio.Reader, s *session) error {
	var hdr [8]byte
	var frame, batch []byte
	pending := false // messages received since the last checkpoint
	flush := func() error {
		if !pending {
			return nil
		}
		pending = false
		err := f.writeBatch(batch, s, -1)
		batch = batch[:0]
		return err
	}
	for {
		if br.Buffered() < len(hdr) {
			if err := flush(); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		size := int(binary.BigEndian.Uint32(hdr[4:]))
		if size > maxFrame {
			_ = flush()
			return fmt.Errorf("log frame of %d bytes", size)
		}
		if br.Buffered() < size {
			if err := flush(); err != nil {
				return err
			}
		}
		if cap(frame) < size {
			frame = make([]byte, size)
		}
		frame = frame[:size]
		if _, err := io.ReadFull(br, frame); err != nil {
			_ = flush()
			return err
		}
		switch stdcopy.StdType(hdr[0]) {
		case stdcopy.Stdout, stdcopy.Stderr:
		case stdcopy.Systemerr:
			_ = flush()
			return errors.New(string(frame))
		default:
			continue
		}
		ts, line, ok := splitTimestamp(frame)
		if !ok {
			ts = s.last
		}
		pending = true
		if s.add(ts) {
			batch = append(batch, line...)
			if len(batch) >= maxBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// followFile reads the Engine's json-file log from the cursor's offset as
// it grows, until the container has stopped and the file is read to its
// end.
func (f *logFollower) followFile() error {
	fh, err := os.Open(f.engFile)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.cur.off, io.SeekStart); err != nil {
		return err
	}
	stopped := make(chan struct{})
	go f.watchStop(stopped)
	return f.copyFile(&rotationCheck{File: fh, path: f.engFile}, newSession(f.cur), f.cur.off, stopped, filePoll)
}

// errRotated says the Engine's file was replaced under the follower.
var errRotated = errors.New("the Engine's log file was rotated")

// rotationCheck is the Engine's open file; at its end it fails with
// errRotated when the path names another file now (the Engine rotates its
// logs where max-size is set in the daemon's configuration).
type rotationCheck struct {
	*os.File
	path string
}

func (r *rotationCheck) Read(p []byte) (int, error) {
	n, err := r.File.Read(p)
	if n == 0 && errors.Is(err, io.EOF) {
		open, err1 := r.File.Stat()
		now, err2 := os.Stat(r.path)
		if err1 != nil || err2 != nil || !os.SameFile(open, now) {
			return 0, errRotated
		}
	}
	return n, err
}

// watchStop closes stopped once the container no longer runs (or is gone).
// The Engine closes a container's log before it marks it stopped, so the
// file is complete then.
func (f *logFollower) watchStop(stopped chan<- struct{}) {
	defer close(stopped)
	for f.ctx.Err() == nil {
		okCh, errCh := f.cli.ContainerWait(f.ctx, f.id, container.WaitConditionNotRunning)
		select {
		case <-okCh:
			return
		case err := <-errCh:
			if cerrdefs.IsNotFound(err) {
				return
			}
		}
		select {
		case <-f.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// engineEntry is one line of the json-file log driver's file.
type engineEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// copyFile copies the messages of the Engine's file r, read from offset
// off, into the job's log, polling at EOF until stopped is closed, then
// reading to the end once more.
func (f *logFollower) copyFile(r io.Reader, s *session, off int64, stopped <-chan struct{}, poll time.Duration) error {
	buf := make([]byte, 0, 256<<10)
	var batch []byte
	pending := false
	flush := func() error {
		if !pending {
			return nil
		}
		pending = false
		err := f.writeBatch(batch, s, off)
		batch = batch[:0]
		return err
	}
	final := false
	var e engineEntry
	for {
		if len(buf) == cap(buf) {
			// A line longer than the buffer.
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && !errors.Is(err, io.EOF) {
			_ = flush()
			return err
		}
		rest := buf
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			line := rest[:i]
			rest = rest[i+1:]
			off += int64(i + 1)
			pending = true
			e = engineEntry{}
			if json.Unmarshal(line, &e) != nil || (e.Stream != "stdout" && e.Stream != "stderr") {
				continue
			}
			ts := e.Time.UnixNano()
			if e.Time.IsZero() {
				ts = s.last
			}
			s.add(ts)
			batch = append(batch, e.Log...)
			if len(batch) >= maxBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		buf = buf[:copy(buf, rest)]
		if n > 0 {
			continue
		}
		// At the end of what the Engine has written so far.
		if err := flush(); err != nil {
			return err
		}
		if final {
			return nil
		}
		select {
		case <-stopped:
			final = true // read to the end once more: then all of it is in
		case <-f.ctx.Done():
			return f.ctx.Err()
		case <-time.After(poll):
		}
	}
}

// engineLogFile is the container's json-file log where this process can
// read it and the Engine does not rotate it; "" otherwise.
func (r *Runtime) engineLogFile(insp container.InspectResponse) string {
	if r.noLogFile || !strings.HasPrefix(r.cli.DaemonHost(), "unix://") || insp.LogPath == "" || insp.HostConfig == nil {
		return ""
	}
	lc := insp.HostConfig.LogConfig
	if lc.Type != "json-file" || lc.Config["max-size"] != "" || lc.Config["compress"] == "true" {
		return ""
	}
	fh, err := os.Open(insp.LogPath)
	if err != nil {
		return ""
	}
	fh.Close()
	return insp.LogPath
}

// splitTimestamp splits "<RFC3339Nano> <line>" into the time in Unix
// nanoseconds and the line.
func splitTimestamp(b []byte) (int64, []byte, bool) {
	end := bytes.IndexByte(b[:min(len(b), 64)], ' ')
	if end < 0 {
		return 0, b, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:end]))
	if err != nil {
		return 0, b, false
	}
	return t.UnixNano(), b[end+1:], true
}
