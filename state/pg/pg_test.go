package pg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/state/pg/pgtest"
	"github.com/dstackai/dstack-go/state/statetest"
)

func TestMain(m *testing.M) {
	statetest.Main(m, func(cfg map[string]string) (state.Backend, error) { return New(cfg) })
}

func open(t testing.TB, cfg map[string]string) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// sqlConn is a plain connection to the test database, for looking at
// and damaging rows behind the backend's back.
func sqlConn(t testing.TB, cfg map[string]string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), cfg["conn_str"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// putRaw stores data as a workspace's whole document, with no resource
// rows, as a new revision.
func putRaw(t testing.TB, cfg map[string]string, ws string, data []byte) {
	t.Helper()
	ctx := context.Background()
	b := open(t, cfg)
	if err := b.open(ctx); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, b.q(`
			INSERT INTO {states} (workspace, revision, serial, lineage, head, sep, tail)
			VALUES ($1, nextval({revisions_lit}), 0, '', $2, '', '')
			ON CONFLICT (workspace) DO UPDATE SET revision = excluded.revision, head = excluded.head, sep = '', tail = ''`), ws, data); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, b.q(`DELETE FROM {resources} WHERE workspace = $1`), ws)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	cfg := pgtest.Config(t)
	statetest.Run(t, statetest.Harness{
		New:    func(t testing.TB) state.Backend { return open(t, cfg) },
		PutRaw: func(t testing.TB, ws string, data []byte) { putRaw(t, cfg, ws, data) },
		Config: cfg,
		Open:   func(cfg map[string]string) (state.Backend, error) { return New(cfg) },
	})
}

func TestNewSettings(t *testing.T) {
	t.Setenv("DSTACK_PG_CONN_STR", "")
	t.Setenv("PG_CONN_STR", "")
	tests := []struct {
		name    string
		cfg     map[string]string
		env     map[string]string
		want    string // "schema host ttl create-schema create-tables"
		wantErr string
	}{
		{name: "defaults", cfg: map[string]string{"conn_str": "postgres://u@db1/x"},
			want: "dstack_remote_state db1 2m0s true true"},
		{name: "all settings", cfg: map[string]string{"conn_str": "host=db2 user=u", "schema_name": "ops", "skip_schema_creation": "true", "skip_table_creation": "1", "lock_ttl": "90s"},
			want: "ops db2 1m30s false false"},
		{name: "DSTACK_PG_CONN_STR", env: map[string]string{"DSTACK_PG_CONN_STR": "postgres://u@db3/x", "PG_CONN_STR": "postgres://u@db4/x"},
			want: "dstack_remote_state db3 2m0s true true"},
		{name: "PG_CONN_STR", env: map[string]string{"PG_CONN_STR": "postgres://u@db4/x"},
			want: "dstack_remote_state db4 2m0s true true"},
		{name: "conn_str wins", cfg: map[string]string{"conn_str": "postgres://u@db5/x"}, env: map[string]string{"PG_CONN_STR": "postgres://u@db4/x"},
			want: "dstack_remote_state db5 2m0s true true"},
		{name: "unknown", cfg: map[string]string{"conn-str": "x"}, wantErr: `unknown setting "conn-str" (did you mean "conn_str"?)`},
		{name: "unknown far", cfg: map[string]string{"bucket": "x"}, wantErr: `unknown setting "bucket" (known:`},
		{name: "bad bool", cfg: map[string]string{"skip_schema_creation": "yes please"}, wantErr: `skip_schema_creation is "yes please"`},
		{name: "bad ttl", cfg: map[string]string{"lock_ttl": "soon"}, wantErr: `lock_ttl is "soon"`},
		{name: "zero ttl", cfg: map[string]string{"lock_ttl": "0s"}, wantErr: `lock_ttl is "0s"`},
		{name: "empty schema", cfg: map[string]string{"schema_name": ""}, wantErr: `schema_name is empty`},
		{name: "bad conn_str", cfg: map[string]string{"conn_str": "postgres://u@db1:notaport/x"}, wantErr: `conn_str`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			b, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%v): got error %v, want one containing %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got := fmt.Sprintf("%s %s %s %v %v", b.Schema(), b.pool.Config().ConnConfig.Host, b.ttl, b.makeSchema, b.makeTable)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

// bigState returns a state of n resources, each about 700 bytes encoded,
// shaped like what a fleet's apply records.
func bigState(n int) *state.State {
	s := state.New("test")
	s.Serial = 1
	for i := range n {
		s.Resources = append(s.Resources, &state.Resource{
			Address:    fmt.Sprintf("instance.node-%05d", i),
			ConfigHash: fmt.Sprintf("%064x", i),
			DependsOn:  []string{"network.main", "volume.data"},
			Attributes: map[string]any{"region": "eu-west-1", "type": "p5.48xlarge", "disk_gb": 500},
			Instances: []*state.Instance{{
				Index: 0, ProviderID: fmt.Sprintf("i-%017x", i), Provider: "aws",
				Token: fmt.Sprintf("tok-%d", i), Status: "running",
				Attributes: map[string]any{"private_ip": fmt.Sprintf("10.0.%d.%d", i/256, i%256), "az": "eu-west-1a"},
				Secrets:    map[string]string{"agent_token": fmt.Sprintf("secret-%d", i)},
			}},
		})
	}
	s.Outputs = map[string]state.Output{"endpoint": {Value: "https://example.test"}}
	return s
}

// rowXmins returns the transaction that last wrote each resource row.
func rowXmins(t testing.TB, c *pgx.Conn, b *Backend, ws string) map[string]string {
	t.Helper()
	rows, err := c.Query(context.Background(), b.q(`SELECT address, xmin::text FROM {resources} WHERE workspace = $1`), ws)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var a, x string
	if _, err := pgx.ForEachRow(rows, []any{&a, &x}, func() error { out[a] = x; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// touched returns the addresses whose rows the last write to ws wrote:
// their xmin is the transaction that updated the states row.
func touched(t testing.TB, c *pgx.Conn, b *Backend, ws string, before map[string]string) (written, deleted []string) {
	t.Helper()
	var headX string
	if err := c.QueryRow(context.Background(), b.q(`SELECT xmin::text FROM {states} WHERE workspace = $1`), ws).Scan(&headX); err != nil {
		t.Fatal(err)
	}
	after := rowXmins(t, c, b, ws)
	for a, x := range after {
		if x == headX {
			written = append(written, a)
		} else if before[a] != x {
			t.Errorf("row %s changed by a transaction other than the write", a)
		}
	}
	for a := range before {
		if _, ok := after[a]; !ok {
			deleted = append(deleted, a)
		}
	}
	slices.Sort(written)
	slices.Sort(deleted)
	return written, deleted
}

// TestWriteTouchesOnlyChangedRows checks the partial write: on a state of
// 10,000 resources, changing one updates one row, and adding, removing
// and changing resources writes exactly those rows.
func TestWriteTouchesOnlyChangedRows(t *testing.T) {
	ctx, cfg, ws := t.Context(), pgtest.Config(t), "big"
	b := open(t, cfg)
	c := sqlConn(t, cfg)
	s := bigState(10000)
	start := time.Now()
	v, err := b.Write(ctx, ws, s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first write of 10,000 resources: %v", time.Since(start))
	before := rowXmins(t, c, b, ws)
	if len(before) != 10000 {
		t.Fatalf("%d resource rows, want 10000", len(before))
	}

	start = time.Now()
	snap, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read of 10,000 resources: %v", time.Since(start))
	if snap.Version != v {
		t.Fatalf("read version %q, wrote %q", snap.Version, v)
	}
	next := snap.State
	next.Serial++
	next.Resource("instance.node-04242").Instances[0].Status = "stopped"
	start = time.Now()
	v, err = b.Write(ctx, ws, next, v, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("write of one changed resource of 10,000: %v", time.Since(start))
	written, deleted := touched(t, c, b, ws, before)
	if diff := cmp.Diff([]string{"instance.node-04242"}, written); diff != "" || len(deleted) > 0 {
		t.Fatalf("one change: rows written (-want +got):\n%s\ndeleted %v", diff, deleted)
	}

	// Another client, which has not read or written this revision, asks
	// the server for the rows' hashes instead of remembering them.
	other := open(t, cfg)
	before = rowXmins(t, c, b, ws)
	next.Serial++
	next.Remove("instance.node-00007")
	next.Put(&state.Resource{Address: "instance.added", Attributes: map[string]any{"n": 1}})
	next.Resource("instance.node-09999").ConfigHash = "changed"
	if v, err = other.Write(ctx, ws, next, v, ""); err != nil {
		t.Fatal(err)
	}
	written, deleted = touched(t, c, b, ws, before)
	if diff := cmp.Diff([]string{"instance.added", "instance.node-09999"}, written); diff != "" {
		t.Errorf("rows written (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"instance.node-00007"}, deleted); diff != "" {
		t.Errorf("rows deleted (-want +got):\n%s", diff)
	}

	// Nothing changed: no resource row is written. b remembers an older
	// revision, so it asks too.
	before = rowXmins(t, c, b, ws)
	next.Serial++
	if v, err = b.Write(ctx, ws, next, v, ""); err != nil {
		t.Fatal(err)
	}
	if written, deleted = touched(t, c, b, ws, before); len(written)+len(deleted) > 0 {
		t.Errorf("an unchanged state wrote rows %v and deleted %v", written, deleted)
	}

	got, err := b.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != v {
		t.Errorf("read version %q, wrote %q", got.Version, v)
	}
	sameDocument(t, next, got.State)
}

// sameDocument compares two states by their encoding.
func sameDocument(t *testing.T, want, got *state.State) {
	t.Helper()
	w, err := state.Encode(want.Clone())
	if err != nil {
		t.Fatal(err)
	}
	g, err := state.Encode(got.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(w), string(g)); diff != "" {
		t.Errorf("read back a different document (-written +read):\n%s", diff)
	}
}

// TestRoundTrip writes documents of every shape, cut into rows or stored
// whole, and reads each back unchanged.
func TestRoundTrip(t *testing.T) {
	cfg := pgtest.Config(t)
	b := open(t, cfg)
	c := sqlConn(t, cfg)
	tricky := "a \"quoted\" <html> & \n    },\n    { line\u2028 and \x01 and ✓"
	tests := []struct {
		name      string
		resources []*state.Resource
		wantRows  int
	}{
		{name: "no resources (null)", resources: nil, wantRows: 0},
		{name: "no resources (empty)", resources: []*state.Resource{}, wantRows: 0},
		{name: "one", resources: []*state.Resource{{Address: "task.one"}}, wantRows: 1},
		{name: "tricky strings", resources: []*state.Resource{
			{Address: "task.z", Attributes: map[string]any{"s": tricky, "nested": map[string]any{"k": []any{tricky, 1.5}}}},
			{Address: "task.ä", Instances: []*state.Instance{{Secrets: map[string]string{"k": tricky}}}},
			{Address: "task.A"},
		}, wantRows: 3},
		{name: "same address twice (stored whole)", resources: []*state.Resource{{Address: "task.dup", ConfigHash: "1"}, {Address: "task.dup", ConfigHash: "1"}}, wantRows: 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, ws := t.Context(), fmt.Sprintf("rt-%d", i)
			s := state.New("test")
			s.Serial = 1
			s.Resources = tt.resources
			s.Outputs = map[string]state.Output{"o": {Value: tricky, Sensitive: true}}
			v, err := b.Write(ctx, ws, s, "", "")
			if err != nil {
				t.Fatal(err)
			}
			var rows int
			if err := c.QueryRow(ctx, b.q(`SELECT count(*) FROM {resources} WHERE workspace = $1`), ws).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != tt.wantRows {
				t.Errorf("%d resource rows, want %d", rows, tt.wantRows)
			}
			got, err := b.Read(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			sameDocument(t, s, got.State)
			// From whatever form it had, to the cut form and back.
			got.State.Serial++
			got.State.Resources = []*state.Resource{{Address: "task.after"}}
			if _, err := b.Write(ctx, ws, got.State, v, ""); err != nil {
				t.Fatal(err)
			}
			again, err := b.Read(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			sameDocument(t, got.State, again.State)
		})
	}
}

// TestDamagedRows: the checksum covers the resource rows too.
func TestDamagedRows(t *testing.T) {
	cfg := pgtest.Config(t)
	b := open(t, cfg)
	c := sqlConn(t, cfg)
	tests := []struct {
		name   string
		damage string
	}{
		{"edited row", `UPDATE {resources} SET doc = convert_to(replace(convert_from(doc, 'UTF8'), 'running', 'stopped'), 'UTF8') WHERE workspace = $1 AND address = 'instance.node-00001'`},
		{"missing row", `DELETE FROM {resources} WHERE workspace = $1 AND address = 'instance.node-00001'`},
		{"extra row", `INSERT INTO {resources} (workspace, address, doc) SELECT workspace, 'instance.node-00001x', doc FROM {resources} WHERE workspace = $1 AND address = 'instance.node-00001'`},
		{"truncated row", `UPDATE {resources} SET doc = substring(doc for 20) WHERE workspace = $1 AND address = 'instance.node-00002'`},
		{"truncated tail", `UPDATE {states} SET tail = substring(tail for 5) WHERE workspace = $1`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, ws := t.Context(), fmt.Sprintf("damaged-%d", i)
			if _, err := b.Write(ctx, ws, bigState(3), "", ""); err != nil {
				t.Fatal(err)
			}
			if tag, err := c.Exec(ctx, b.q(tt.damage), ws); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("damaging: %v %v", tag, err)
			}
			_, err := b.Read(ctx, ws)
			var corrupt *state.CorruptError
			if !errors.As(err, &corrupt) {
				t.Fatalf("read: got %v, want *CorruptError", err)
			}
			if !strings.Contains(corrupt.Where, ws) {
				t.Errorf("error %q does not name the workspace", err)
			}
		})
	}
}

func TestWriteUnderAnotherLock(t *testing.T) {
	ctx, cfg, ws := t.Context(), pgtest.Config(t), "locked"
	a, b := open(t, cfg), open(t, cfg)
	s := state.New("test")
	v, err := a.Write(ctx, ws, s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.Lock(ctx, ws, state.LockInfo{Who: "a"}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// a's lease runs out and b takes the lock: a's write is refused even
	// though its revision is still current.
	time.Sleep(time.Until(la.Expires) + 10*time.Millisecond)
	lb, err := b.Lock(ctx, ws, state.LockInfo{Who: "b"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.Serial++
	_, err = a.Write(ctx, ws, s, v, la.ID)
	var lost *state.LockLostError
	if !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.ID != lb.ID {
		t.Fatalf("write under b's lock: got %v, want *LockLostError naming b's lock", err)
	}
	if _, err := b.Write(ctx, ws, s, v, lb.ID); err != nil {
		t.Fatalf("b's write: %v", err)
	}
	// A lapsed lease that nobody took does not stop its holder's write:
	// the compare-and-swap still guards it.
	if err := b.Unlock(ctx, ws, lb.ID); err != nil {
		t.Fatal(err)
	}
	lc, err := a.Lock(ctx, ws, state.LockInfo{Who: "a"}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(lc.Expires) + 10*time.Millisecond)
	snap, err := a.Read(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	snap.State.Serial++
	if _, err := a.Write(ctx, ws, snap.State, snap.Version, lc.ID); err != nil {
		t.Fatalf("write under a lapsed lease nobody took: %v", err)
	}
}

// TestRevisionsNeverRepeat: a revision read before a workspace was
// deleted does not match the state created after.
func TestRevisionsNeverRepeat(t *testing.T) {
	ctx, cfg, ws := t.Context(), pgtest.Config(t), "again"
	b := open(t, cfg)
	v1, err := b.Write(ctx, ws, state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	v2, err := b.Write(ctx, ws, state.New("test"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var conflict *state.ConflictError
	if _, err := b.Write(ctx, ws, state.New("test"), v1, ""); !errors.As(err, &conflict) {
		t.Fatalf("write naming the deleted state's revision %s (now %s): got %v, want *ConflictError", v1, v2, err)
	}
}

// TestConcurrentSetup: processes starting at once on an empty database
// all get their tables.
func TestConcurrentSetup(t *testing.T) {
	cfg := pgtest.Config(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		b := open(t, maps.Clone(cfg))
		wg.Go(func() {
			if _, err := b.Workspaces(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSkipTableCreation(t *testing.T) {
	cfg := pgtest.Config(t)
	cfg["skip_table_creation"] = "true"
	b := open(t, cfg)
	_, err := b.Read(t.Context(), "default")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read with no tables and skip_table_creation: got %v, want the server's error", err)
	}
}

func BenchmarkPGWrite10000OneChange(bm *testing.B) {
	ctx, cfg, ws := context.Background(), pgtest.Config(bm), "bench"
	b := open(bm, cfg)
	s := bigState(10000)
	v, err := b.Write(ctx, ws, s, "", "")
	if err != nil {
		bm.Fatal(err)
	}
	r := s.Resource("instance.node-05000")
	i := 0
	for bm.Loop() {
		i++
		s.Serial++
		r.Attributes["disk_gb"] = i
		if v, err = b.Write(ctx, ws, s, v, ""); err != nil {
			bm.Fatal(err)
		}
	}
}

func BenchmarkPGRead10000(bm *testing.B) {
	ctx, cfg, ws := context.Background(), pgtest.Config(bm), "bench"
	b := open(bm, cfg)
	if _, err := b.Write(ctx, ws, bigState(10000), "", ""); err != nil {
		bm.Fatal(err)
	}
	for bm.Loop() {
		if _, err := b.Read(ctx, ws); err != nil {
			bm.Fatal(err)
		}
	}
}

func BenchmarkPGLockUnlock(bm *testing.B) {
	ctx, cfg, ws := context.Background(), pgtest.Config(bm), "bench"
	b := open(bm, cfg)
	for bm.Loop() {
		l, err := b.Lock(ctx, ws, state.LockInfo{Who: "bench"}, time.Minute)
		if err != nil {
			bm.Fatal(err)
		}
		if err := b.Unlock(ctx, ws, l.ID); err != nil {
			bm.Fatal(err)
		}
	}
}

// BenchmarkPGWrite10000OneChangeUnremembered is the same write by a client
// that did not read or write the revision it replaces (another process's
// write came between), so it reads the rows' hashes from the server.
func BenchmarkPGWrite10000OneChangeUnremembered(bm *testing.B) {
	ctx, cfg, ws := context.Background(), pgtest.Config(bm), "bench"
	b := open(bm, cfg)
	s := bigState(10000)
	v, err := b.Write(ctx, ws, s, "", "")
	if err != nil {
		bm.Fatal(err)
	}
	r := s.Resource("instance.node-05000")
	i := 0
	for bm.Loop() {
		i++
		s.Serial++
		r.Attributes["disk_gb"] = i
		b.rows.forget(ws)
		if v, err = b.Write(ctx, ws, s, v, ""); err != nil {
			bm.Fatal(err)
		}
	}
}

// TestLockRace: of many callers racing for an expired lock, one wins.
func TestLockRace(t *testing.T) {
	ctx, cfg, ws := t.Context(), pgtest.Config(t), "race"
	first := open(t, cfg)
	l, err := first.Lock(ctx, ws, state.LockInfo{Who: "first"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(l.Expires) + 10*time.Millisecond)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		won    []string
		others []error
	)
	for i := range 10 {
		b := open(t, cfg)
		wg.Go(func() {
			got, err := b.Lock(ctx, ws, state.LockInfo{Who: fmt.Sprint(i)}, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			var locked *state.LockedError
			switch {
			case err == nil:
				won = append(won, got.ID)
			case !errors.As(err, &locked):
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 || len(others) > 0 {
		t.Fatalf("%d callers took the lock (want 1); other errors: %v", len(won), others)
	}
	if info, err := first.LockInfo(ctx, ws); err != nil || info == nil || info.ID != won[0] {
		t.Fatalf("stored lock %+v %v, want the winner's %s", info, err, won[0])
	}
}
