package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/statetest"
)

func TestMain(m *testing.M) {
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	cfg := map[string]string{"path": dir}
	statetest.Run(t, statetest.Harness{
		BreaksOrphanedLocks: true,
		New: func(t testing.TB) state.Backend {
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		PutRaw: func(t testing.TB, ws string, data []byte) {
			b, _ := New(cfg)
			p := b.StatePath(ws)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		Config: cfg,
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

func TestUnknownSetting(t *testing.T) {
	if _, err := New(map[string]string{"pth": "x"}); err == nil {
		t.Fatal("an unknown setting was accepted")
	}
}

func TestBackupKept(t *testing.T) {
	b, _ := New(map[string]string{"path": t.TempDir()})
	ctx := t.Context()
	s := state.New("test")
	s.Serial = 1
	v1, err := b.Write(ctx, "default", s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(b.StatePath("default"))
	s.Serial = 2
	if _, err := b.Write(ctx, "default", s, v1, ""); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(b.StatePath("default") + ".backup")
	if err != nil {
		t.Fatal(err)
	}
	if string(backup) != string(first) {
		t.Fatal("the backup is not the previous state")
	}
}

func TestJournal(t *testing.T) {
	ctx := context.Background()
	b, err := New(map[string]string{"path": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := b.ReadJournal(ctx, "default"); err != nil || len(recs) != 0 {
		t.Fatalf("empty journal: %q %v", recs, err)
	}
	if err := b.AppendJournal(ctx, "default", "", [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendJournal(ctx, "default", "", [][]byte{[]byte(`{"c":3}`)}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendJournal(ctx, "default", "", [][]byte{[]byte("x\ny")}); err == nil {
		t.Fatal("a record with a newline was accepted")
	}
	// A crash in the middle of an append leaves a torn last line.
	f, err := os.OpenFile(b.StatePath("default")+".journal", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"torn":`)
	_ = f.Close()
	recs, err := b.ReadJournal(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	got := string(bytes.Join(recs, []byte("|")))
	if got != `{"a":1}|{"b":2}|{"c":3}` {
		t.Fatalf("records: %s", got)
	}
	l, err := b.Lock(ctx, "default", state.LockInfo{Who: "me"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AppendJournal(ctx, "default", "someone-else", [][]byte{[]byte(`{}`)}); err == nil {
		t.Fatal("append under another's lock was accepted")
	}
	if err := b.ClearJournal(ctx, "default", l.ID); err != nil {
		t.Fatal(err)
	}
	if recs, _ := b.ReadJournal(ctx, "default"); len(recs) != 0 {
		t.Fatalf("after clear: %q", recs)
	}
}
