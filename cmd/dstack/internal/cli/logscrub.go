package cli

import (
	"bytes"
	"io"
	"slices"
	"sync"
)

// logMask replaces a secret's value in a job's output.
const logMask = "***"

// logScrubber writes a job's output with every secret value replaced by
// logMask, as the output streams in: a value split across two writes is
// still replaced, since the end of a write that could begin a value is
// held back until the next write (or Flush) says whether it does. Output
// that cannot begin one is written at once, so following a run is not
// delayed.
type logScrubber struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte // longest first, so a value inside another goes whole
	pending []byte
}

// newLogScrubber returns w itself when there are no values to hide.
func newLogScrubber(w io.Writer, values []string) *logScrubber {
	ls := &logScrubber{w: w}
	for _, v := range values {
		if v != "" {
			ls.secrets = append(ls.secrets, []byte(v))
		}
	}
	slices.SortFunc(ls.secrets, func(a, b []byte) int { return len(b) - len(a) })
	return ls
}

func (ls *logScrubber) Write(p []byte) (int, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.secrets) == 0 {
		return ls.w.Write(p)
	}
	ls.pending = append(ls.pending, p...)
	out, rest := ls.scrub(ls.pending, false)
	ls.pending = append(ls.pending[:0], rest...)
	if len(out) > 0 {
		if _, err := ls.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what was held back: the output has ended.
func (ls *logScrubber) Flush() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.pending) == 0 {
		return nil
	}
	out, _ := ls.scrub(ls.pending, true)
	ls.pending = ls.pending[:0]
	_, err := ls.w.Write(out)
	return err
}

// scrub replaces the values in b and returns what may be written now and
// the tail to hold back (a prefix of some value that b ends with, unless
// final).
func (ls *logScrubber) scrub(b []byte, final bool) (out, rest []byte) {
	var buf bytes.Buffer
	i := 0
	for i < len(b) {
		matched := false
		for _, s := range ls.secrets {
			if bytes.HasPrefix(b[i:], s) {
				buf.WriteString(logMask)
				i += len(s)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		if !final && ls.couldStart(b[i:]) {
			return buf.Bytes(), b[i:]
		}
		buf.WriteByte(b[i])
		i++
	}
	return buf.Bytes(), nil
}

// couldStart reports whether tail, shorter than some value, is that
// value's beginning: more output may complete it.
func (ls *logScrubber) couldStart(tail []byte) bool {
	for _, s := range ls.secrets {
		if len(tail) < len(s) && bytes.HasPrefix(s, tail) {
			return true
		}
	}
	return false
}
