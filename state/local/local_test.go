package local

import (
	"os"
	"path/filepath"
	"testing"

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
