package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultBlobIdle is how long the agent keeps a blob no unfinished job
// needs after its last use (an upload, a HEAD, a job naming it): a week
// of runs of the same commit reuse it, and a host's disk does not fill
// with old commits.
const DefaultBlobIdle = 7 * 24 * time.Hour

// blobSweepInterval is how often unused blobs are looked for.
const blobSweepInterval = 10 * time.Minute

// ErrBadBlob is returned when an uploaded blob's bytes do not hash to the
// name it was uploaded under.
var ErrBadBlob = errors.New("the blob's content does not match its hash")

// blobStore keeps the archives jobs unpack (repos, files) in
// DataDir/blobs/<sha256>, one file per content hash: a blob is uploaded
// once per host and shared by every job that names it. Files are written
// to a temporary name and renamed once their hash is checked, so a blob
// that exists is whole.
type blobStore struct {
	dir string
	log *slog.Logger
	// uploads counts the blobs stored since the agent started (not the
	// uploads of a blob it already had, which store nothing).
	uploads atomic.Int64
}

// validBlobHash reports whether h is a SHA-256 in lower-case hex.
func validBlobHash(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (b *blobStore) path(hash string) string { return filepath.Join(b.dir, hash) }

// has reports whether the blob is stored, and marks it used now: a
// blob a client has just been told about is not swept before its job is
// submitted.
func (b *blobStore) has(hash string) bool {
	if !validBlobHash(hash) {
		return false
	}
	fi, err := os.Stat(b.path(hash))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b.touch(hash)
	return true
}

// touch marks a blob used now; its modification time is its last use.
func (b *blobStore) touch(hash string) {
	now := time.Now()
	_ = os.Chtimes(b.path(hash), now, now)
}

// sweep removes the blobs unused for longer than idle that no job in
// inUse still needs, and uploads abandoned half-way as long ago.
func (b *blobStore) sweep(inUse map[string]bool, idle time.Duration) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if inUse[name] || !(validBlobHash(name) || strings.HasPrefix(name, ".upload-")) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < idle {
			continue
		}
		if err := os.Remove(filepath.Join(b.dir, name)); err == nil {
			b.log.Info("blob removed", "blob", name, "unused_for", time.Since(fi.ModTime()).Round(time.Second).String())
		}
	}
}

// put stores r's bytes as the blob hash, checking that they hash to it.
// It reports false, reading nothing, when the blob is already stored.
func (b *blobStore) put(hash string, r io.Reader) (bool, error) {
	if !validBlobHash(hash) {
		return false, &InvalidSpecError{Err: fmt.Errorf("blob %q: want a SHA-256 in lower-case hex", hash)}
	}
	if b.has(hash) {
		return false, nil
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return false, fmt.Errorf("blobs: %w", err)
	}
	f, err := os.CreateTemp(b.dir, ".upload-*")
	if err != nil {
		return false, fmt.Errorf("blobs: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", hash, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return false, &InvalidSpecError{Err: fmt.Errorf("blob %s: %w (it hashes to %s)", hash, ErrBadBlob, got)}
	}
	// Blobs are read by jobs of any user on the host runtime: the
	// directory is private to the agent, the file itself readable.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return false, fmt.Errorf("blob %s: %w", hash, err)
	}
	if err := os.Rename(f.Name(), b.path(hash)); err != nil {
		return false, fmt.Errorf("blob %s: %w", hash, err)
	}
	b.uploads.Add(1)
	b.log.Info("blob stored", "blob", hash, "bytes", n)
	return true, nil
}

// check fails, with an *InvalidSpecError, when spec names blobs that
// are not stored; those it names are marked used.
func (b *blobStore) check(spec JobSpec) error {
	var miss []string
	for _, h := range spec.blobs() {
		if !b.has(h) {
			miss = append(miss, h)
		}
	}
	if len(miss) > 0 {
		return &InvalidSpecError{Err: fmt.Errorf("blobs not uploaded (PUT /blobs/{sha256} first): %s", strings.Join(miss, ", "))}
	}
	return nil
}

// HasBlob reports whether the blob with SHA-256 hash (hex) is stored.
func (m *Manager) HasBlob(hash string) bool { return m.blobs.has(hash) }

// PutBlob stores r's bytes as the blob hash, after checking that they
// hash to it (else an *InvalidSpecError wrapping ErrBadBlob). It reports
// false, reading nothing, when the blob is already stored: jobs that name
// the same content share one copy.
func (m *Manager) PutBlob(hash string, r io.Reader) (bool, error) { return m.blobs.put(hash, r) }

// BlobsStored counts the blobs stored since the manager started.
func (m *Manager) BlobsStored() int64 { return m.blobs.uploads.Load() }
