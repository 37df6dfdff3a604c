package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dstackai/dstack-go/providers"
)

// The files of a cloud's directory; see the package documentation.
const (
	configFile  = "sim.json"
	stateFile   = "state.json"
	indexFile   = "index.log"
	objectsDir  = "objects"
	replacedDir = "replaced"
	tmpName     = ".tmp" // the temporary file of a write, in each directory
)

// record is an object as stored.
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

// index is a process's copy of index.log, which has a JSON line per
// object made (see indexLine).
type index struct {
	off  int64               // how much of the log has been read
	file map[string]string   // object ID: its file name in objects/
	jobs map[string][]string // instance ID: the file names of its jobs
}

// fileName is the name of the file of the object made with token: the
// token with bytes other than letters, digits, '-', '_' and a '.' that is
// not first escaped as %XX, so that distinct tokens get distinct names.
// Names that would be long are cut and end in '~' and a hash of the token.
func fileName(token string) string {
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		c := token[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	s := b.String()
	if len(s) > 160 {
		sum := sha256.Sum256([]byte(token))
		s = s[:100] + "~" + hex.EncodeToString(sum[:16])
	}
	return s + ".json"
}

// writeFile replaces dir/name with data through a temporary file and a
// rename, so readers see the old file or the new one. It does not sync:
// the sim survives its processes crashing, not the machine. Callers hold
// the lock, which makes the one temporary name per directory safe.
func writeFile(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, tmpName)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// readRecord reads a record file; ok is false when there is none.
func readRecord(name string) (r record, ok bool, err error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, false, fmt.Errorf("%s: %w", name, err)
	}
	return r, true, nil
}

// byToken reads the record of the object last made with token.
func (c *Cloud) byToken(token string) (record, bool, error) {
	return c.byFile(fileName(token))
}

func (c *Cloud) byFile(name string) (record, bool, error) {
	return readRecord(filepath.Join(c.dir, objectsDir, name))
}

// byID reads the record of the object with id, wherever it is. The
// caller holds the lock.
func (c *Cloud) byID(id string) (record, bool, error) {
	if err := c.refresh(); err != nil {
		return record{}, false, err
	}
	name, ok := c.idx.file[id]
	if !ok {
		return record{}, false, nil
	}
	r, ok, err := c.byFile(name)
	if err != nil || ok && r.ID == id {
		return r, ok, err
	}
	// The token was used again after this object was terminated.
	return readRecord(filepath.Join(c.dir, replacedDir, id+".json"))
}

// put writes r to its token's file.
func (c *Cloud) put(r record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(c.dir, objectsDir), fileName(r.Token), data)
}

// indexLine is a line of index.log.
type indexLine struct {
	ID   string `json:"id"`
	File string `json:"file"`           // its file name in objects/
	Host string `json:"host,omitempty"` // the instance a job runs on
}

// refresh reads the lines added to index.log since the last call. A last
// line without its newline (its writer died) is left for later, and
// lines that are not JSON (the start of such a line) are skipped. The
// caller holds the lock.
func (c *Cloud) refresh() error {
	data, err := io.ReadAll(io.NewSectionReader(c.index, c.idx.off, 1<<62))
	if err != nil {
		return fmt.Errorf("read %s: %w", indexFile, err)
	}
	end := bytes.LastIndexByte(data, '\n') + 1
	c.idx.off += int64(end)
	for line := range bytes.Lines(data[:end]) {
		var l indexLine
		if json.Unmarshal(line, &l) != nil || l.ID == "" || l.File == "" {
			continue
		}
		c.idx.file[l.ID] = l.File
		if l.Host != "" {
			c.idx.jobs[l.Host] = append(c.idx.jobs[l.Host], l.File)
		}
	}
	return nil
}

// addIndex appends r's line to index.log. The caller holds the lock.
func (c *Cloud) addIndex(r record) error {
	line, err := json.Marshal(indexLine{ID: r.ID, File: fileName(r.Token), Host: r.Host})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if err := c.refresh(); err != nil {
		return err
	}
	if info, err := c.index.Stat(); err != nil {
		return err
	} else if info.Size() > c.idx.off {
		line = append([]byte{'\n'}, line...) // end the torn line
	}
	if _, err := c.index.Write(line); err != nil {
		return fmt.Errorf("write %s: %w", indexFile, err)
	}
	return nil
}

// readState reads state.json. The caller holds the lock.
func (c *Cloud) readState() (state, error) {
	var st state
	info, err := c.state.Stat()
	if err != nil {
		return st, err
	}
	data := make([]byte, info.Size())
	if _, err := c.state.ReadAt(data, 0); err != nil && err != io.EOF {
		return st, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", stateFile, err)
	}
	return st, nil
}

// writeState writes st over state.json in place, in one write padded
// with spaces to the file's length: a process killed in the middle has
// written all of it or nothing, and the file never holds the tail of an
// older, longer state. The caller holds the lock.
func (c *Cloud) writeState(st state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	info, err := c.state.Stat()
	if err != nil {
		return err
	}
	if n := int(info.Size()) - len(data); n > 0 {
		data = append(data, bytes.Repeat([]byte{' '}, n)...)
	}
	if _, err := c.state.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write %s: %w", stateFile, err)
	}
	return nil
}

// locked runs fn holding this Cloud's mutex and the flock on state.json,
// with the state read; it writes the state back when fn says it changed,
// even when fn fails (an injected failure counts when it fires).
func (c *Cloud) locked(fn func(st *state) (changed bool, err error)) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return errors.New("cloud is closed")
	}
	if err := flock(c.state, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer func() {
		if uerr := flock(c.state, syscall.LOCK_UN); uerr != nil && err == nil {
			err = fmt.Errorf("unlock: %w", uerr)
		}
	}()
	st, err := c.readState()
	if err != nil {
		return err
	}
	changed, err := fn(&st)
	if changed {
		if werr := c.writeState(st); werr != nil {
			return werr
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

// objects reads every record of a directory of records.
func (c *Cloud) objects(sub string) ([]record, error) {
	dir := filepath.Join(c.dir, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []record
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		r, ok, err := readRecord(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}
