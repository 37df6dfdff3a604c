package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/providers"
)

// The files of a cloud's directory; see the package documentation.
const (
	configFile = "sim.json"
	stateFile  = "state.json"
	logFile    = "objects.log"
	// oldIndexFile is a file of the layout of older sims, a file per
	// object, which this one does not read: its directories are refused
	// rather than taken for empty clouds with machines counted.
	oldIndexFile = "index.log"
)

// record is an object as stored: a line of objects.log.
type record struct {
	providers.Object
	// Created is when Create made it.
	Created time.Time `json:"created"`
	// Task is set on a job of a task, which ends after the JobDuration.
	Task bool `json:"task,omitempty"`
	// Pool is the capacity key of the machine it holds, "" for none.
	Pool string `json:"pool,omitempty"`
}

// state is what the cloud counts, in state.json.
type state struct {
	// Seq is the number of objects ever made; IDs and IPs derive from it.
	Seq uint64 `json:"seq"`
	// Used is the number of live machines per capacity key.
	Used map[string]int `json:"used,omitempty"`
	// Fired is how often each failure fired, by Failure.key.
	Fired map[string]int `json:"fired,omitempty"`
}

// index is a process's copy of objects.log: the latest record of every
// object, decoded once. [Cloud.refresh] brings it up to date by reading
// only the bytes appended since it last did.
//
// The index shares no memory with what Create is given or callers are
// handed ([Cloud.view] copies), and the Attributes and Offer of its
// records are never changed: a change stores a whole new record over the
// object's last.
type index struct {
	off   int64               // the end of the last complete line read
	size  int64               // the log's size when last read or written
	objs  map[string]*record  // object ID: its latest record
	token map[string]*record  // token: the latest record of the object last made with it
	jobs  map[string][]string // instance ID: the IDs of the jobs made on it
}

func newIndex() index {
	return index{objs: map[string]*record{}, token: map[string]*record{}, jobs: map[string][]string{}}
}

// add stores r as the latest record of its object. The first record of
// an object is its creation, which makes it its token's object (the
// token's earlier one was terminated) and, for a job on a host, one of
// its host's jobs.
func (x *index) add(r record) {
	if p, seen := x.objs[r.ID]; seen {
		*p = r // for x.token too
		return
	}
	p := &r
	x.objs[r.ID] = p
	x.token[r.Token] = p
	if r.Host != "" {
		x.jobs[r.Host] = append(x.jobs[r.Host], r.ID)
	}
}

// byToken returns the record of the object last made with token. The
// caller holds the lock and has refreshed the index (locked does both).
func (c *Cloud) byToken(token string) (record, bool) {
	if p, ok := c.idx.token[token]; ok {
		return *p, true
	}
	return record{}, false
}

// byID returns the record of the object with id, terminated or not. The
// caller holds the lock and has refreshed the index.
func (c *Cloud) byID(id string) (record, bool) {
	if p, ok := c.idx.objs[id]; ok {
		return *p, true
	}
	return record{}, false
}

// refresh reads the lines appended to objects.log since the last call.
// A last line without its newline is the rest of a writer that died in
// the middle of it: it is left unread, and the next append cuts it off.
// The caller holds the lock.
func (c *Cloud) refresh() error {
	info, err := c.log.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", logFile, err)
	}
	size := info.Size()
	if size < c.idx.off {
		return fmt.Errorf("read %s: it shrank from %d to %d bytes (was it replaced?)", logFile, c.idx.off, size)
	}
	c.idx.size = size
	if size == c.idx.off {
		return nil
	}
	data := make([]byte, size-c.idx.off)
	n, err := c.log.ReadAt(data, c.idx.off)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", logFile, err)
	}
	data = data[:n]
	for {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return nil // a torn line, or none
		}
		var r record
		if err := json.Unmarshal(data[:nl], &r); err != nil {
			return fmt.Errorf("read %s: the line at byte %d: %w", logFile, c.idx.off, err)
		}
		if r.ID == "" || r.Token == "" {
			return fmt.Errorf("read %s: the line at byte %d: an object without an ID or a token", logFile, c.idx.off)
		}
		c.idx.add(r)
		c.idx.off += int64(nl + 1)
		data = data[nl+1:]
	}
}

// append writes rs to objects.log, a line each, in one write, and adds
// copies of them to the index. The caller holds the lock and has
// refreshed the index, which then holds every complete line of the log:
// any bytes past them are a torn line.
func (c *Cloud) append(rs ...record) error {
	var buf []byte
	for _, r := range rs {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode %s: %w", r.ID, err)
		}
		buf = append(append(buf, line...), '\n')
	}
	if c.idx.size > c.idx.off {
		// A writer died in the middle of its line: cut off what it left,
		// which no reader took, so that the log is whole lines again.
		if err := c.log.Truncate(c.idx.off); err != nil {
			return fmt.Errorf("cut the torn end off %s: %w", logFile, err)
		}
		c.idx.size = c.idx.off
	}
	n, err := c.log.Write(buf) // O_APPEND: at the end, at c.idx.off
	c.idx.size += int64(n)
	if err != nil {
		// Whatever whole lines did get written, refresh reads.
		return fmt.Errorf("append to %s: %w", logFile, err)
	}
	for _, r := range rs {
		r.Object = clone(r.Object)
		c.idx.add(r)
	}
	c.idx.off = c.idx.size
	return nil
}

// view is r, a record of the index, as a provider reports it now,
// sharing nothing with the index.
func (c *Cloud) view(r record) providers.Object {
	r.Object = clone(r.Object)
	return c.now(r)
}

// clone is a copy of o that shares no memory with it.
func clone(o providers.Object) providers.Object {
	if o.Offer != nil {
		of := *o.Offer
		if of.GPU != nil {
			g := *of.GPU
			of.GPU = &g
		}
		o.Offer = &of
	}
	if o.Attributes != nil {
		a := make(map[string]string, len(o.Attributes))
		for k, v := range o.Attributes { // faster than maps.Clone for a few
			a[k] = v
		}
		o.Attributes = a
	}
	return o
}

// now is r's object as a provider reports it now: a job of a task is
// done once the JobDuration has passed since it was made, and says when
// it finished.
func (c *Cloud) now(r record) providers.Object {
	o := r.Object
	if r.Task && o.Status == providers.StatusRunning && c.cfg.JobDuration != nil &&
		time.Since(r.Created) >= time.Duration(*c.cfg.JobDuration) {
		o.Status = providers.StatusDone
		o.Reason = "exit code 0"
		// When it ended, as an agent reports it.
		a := make(map[string]string, len(o.Attributes)+1)
		maps.Copy(a, o.Attributes)
		a[providers.AttrFinishedAt] = r.Created.Add(time.Duration(*c.cfg.JobDuration)).UTC().Format(time.RFC3339)
		o.Attributes = a
	}
	return o
}

// readState reads state.json, and notes its size for writeState. The
// caller holds the lock.
func (c *Cloud) readState() (state, error) {
	var st state
	info, err := c.state.Stat()
	if err != nil {
		return st, fmt.Errorf("read %s: %w", stateFile, err)
	}
	c.stateSize = int(info.Size())
	data := make([]byte, c.stateSize)
	if _, err := c.state.ReadAt(data, 0); err != nil && err != io.EOF {
		return st, fmt.Errorf("read %s: %w", stateFile, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", stateFile, err)
	}
	return st, nil
}

// writeState writes st over state.json in place, in one write padded
// with spaces to the file's length: a process killed in the middle has
// written all of it or nothing, and the file never holds the tail of an
// older, longer state. The caller holds the lock, and has read the
// state since taking it.
func (c *Cloud) writeState(st state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the state: %w", err)
	}
	if n := c.stateSize - len(data); n > 0 {
		data = append(data, bytes.Repeat([]byte{' '}, n)...)
	}
	if _, err := c.state.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write %s: %w", stateFile, err)
	}
	c.stateSize = max(c.stateSize, len(data))
	return nil
}

// locked runs fn holding this Cloud's mutex and the flock on state.json,
// with the state read and the index refreshed; it writes the state back
// when fn says it changed, even when fn fails (an injected failure
// counts when it fires).
func (c *Cloud) locked(fn func(st *state) (changed bool, err error)) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return errors.New("cloud is closed")
	}
	if err := flock(c.state, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", stateFile, err)
	}
	defer func() {
		if uerr := flock(c.state, syscall.LOCK_UN); uerr != nil && err == nil {
			err = fmt.Errorf("unlock %s: %w", stateFile, uerr)
		}
	}()
	st, err := c.readState()
	if err != nil {
		return err
	}
	if err := c.refresh(); err != nil {
		return err
	}
	changed, err := fn(&st)
	if changed {
		if werr := c.writeState(st); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
