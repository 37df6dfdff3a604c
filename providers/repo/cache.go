package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cacheEntries bounds the archives the cache keeps, the newest used: a
// few commits of a few repositories.
const cacheEntries = 8

// cachedBase returns the archive of commit's tree prefix from
// opts.CacheDir, building it there on a miss (or in opts.TempDir, owned
// by the caller, without a cache). An entry is NAME.tar and NAME.sha256
// (hash and size), written after the archive, so an entry without it is
// ignored and rebuilt.
func cachedBase(ctx context.Context, g gitRunner, top, commit, prefix string, opts Options) (*Archive, error) {
	if opts.CacheDir == "" {
		return g.archive(ctx, top, commit, prefix, opts.TempDir)
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		// A cache that cannot be made costs time, not the run.
		return g.archive(ctx, top, commit, prefix, opts.TempDir)
	}
	key := sha256.Sum256([]byte(commit + "\x00" + prefix))
	name := filepath.Join(opts.CacheDir, "tree-"+hex.EncodeToString(key[:16]))
	if a, ok := readEntry(name); ok {
		now := time.Now()
		_ = os.Chtimes(name+".sha256", now, now)
		return a, nil
	}
	a, err := g.archive(ctx, top, commit, prefix, opts.CacheDir)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(a.Path, name+".tar"); err != nil {
		a.Remove()
		return nil, fmt.Errorf("archive cache: %w", err)
	}
	a.Path, a.cached = name+".tar", true
	if err := os.WriteFile(name+".sha256", []byte(a.Hash+" "+strconv.FormatInt(a.Size, 10)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("archive cache: %w", err)
	}
	prune(opts.CacheDir)
	return a, nil
}

// readEntry reads a complete cache entry whose archive has the size
// recorded.
func readEntry(name string) (*Archive, bool) {
	data, err := os.ReadFile(name + ".sha256")
	if err != nil {
		return nil, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return nil, false
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return nil, false
	}
	fi, err := os.Stat(name + ".tar")
	if err != nil || fi.Size() != size {
		return nil, false
	}
	return &Archive{Hash: f[0], Size: size, Path: name + ".tar", cached: true}, true
}

// prune removes all but the cacheEntries entries used last, and
// archives of builds that never finished.
func prune(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type entry struct {
		name string
		used time.Time
	}
	var done []entry
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".sha256"):
			if fi, err := e.Info(); err == nil {
				done = append(done, entry{strings.TrimSuffix(n, ".sha256"), fi.ModTime()})
			}
		case strings.HasPrefix(n, "dstack-archive-"):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
	slices.SortFunc(done, func(a, b entry) int { return b.used.Compare(a.used) })
	for _, e := range done[min(len(done), cacheEntries):] {
		os.Remove(filepath.Join(dir, e.name+".sha256"))
		os.Remove(filepath.Join(dir, e.name+".tar"))
	}
}
