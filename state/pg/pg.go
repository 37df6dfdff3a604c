package pg

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dstackai/dstack-go/state"
)

// DefaultSchema is the schema the tables live in unless schema_name says
// otherwise (Terraform's pg backend uses terraform_remote_state).
const DefaultSchema = "dstack_remote_state"

// Backend is the PostgreSQL backend. It is safe for concurrent use.
type Backend struct {
	pool       *pgxpool.Pool
	schema     string
	sql        *strings.Replacer
	ttl        time.Duration
	makeSchema bool
	makeTable  bool

	// rows remembers what the resource rows hold at the revision this
	// backend last read or wrote, so that the next write need not ask.
	rows rowCache

	// setup lets one caller at a time create the tables; ready is set
	// once they exist.
	setup chan struct{}
	ready atomic.Bool
}

var _ state.Backend = (*Backend)(nil)

// settings are the configuration keys New accepts.
var settings = []string{"conn_str", "schema_name", "skip_schema_creation", "skip_table_creation", "lock_ttl"}

// New returns a backend for the settings in cfg:
//
//	conn_str              a postgres:// URL or key=value connection string;
//	                      when empty, DSTACK_PG_CONN_STR, then PG_CONN_STR,
//	                      then the libpq variables (PGHOST, PGUSER, ...)
//	schema_name           the schema of the tables (default dstack_remote_state)
//	skip_schema_creation  "true": the schema exists; do not create it
//	skip_table_creation   "true": the tables exist; do not create them
//	lock_ttl              the lease when a caller names none (default 2m)
//
// It connects lazily: the first operation connects and creates the
// schema and tables if needed. Close releases the connections.
func New(cfg map[string]string) (*Backend, error) {
	connStr := ""
	schema := DefaultSchema
	b := &Backend{ttl: state.DefaultLeaseTTL, makeSchema: true, makeTable: true, setup: make(chan struct{}, 1)}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := cfg[k]
		switch k {
		case "conn_str":
			connStr = v
		case "schema_name":
			if v == "" {
				return nil, errors.New("pg backend: schema_name is empty")
			}
			schema = v
		case "skip_schema_creation", "skip_table_creation":
			skip, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("pg backend: %s is %q, want true or false", k, v)
			}
			if k == "skip_schema_creation" {
				b.makeSchema = !skip
			} else {
				b.makeTable = !skip
			}
		case "lock_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("pg backend: lock_ttl is %q, want a positive duration such as 2m", v)
			}
			b.ttl = d
		default:
			return nil, state.UnknownSetting("pg", k, settings)
		}
	}
	if connStr == "" {
		connStr = os.Getenv("DSTACK_PG_CONN_STR")
	}
	if connStr == "" {
		connStr = os.Getenv("PG_CONN_STR")
	}
	pc, err := pgxpool.ParseConfig(connStr)
	if err != nil {
		return nil, fmt.Errorf("pg backend: conn_str: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("pg backend: %w", err)
	}
	b.pool = pool
	b.schema = schema
	b.sql = strings.NewReplacer(
		"{schema}", pgx.Identifier{schema}.Sanitize(),
		"{states}", pgx.Identifier{schema, "states"}.Sanitize(),
		"{resources}", pgx.Identifier{schema, "resources"}.Sanitize(),
		"{locks}", pgx.Identifier{schema, "locks"}.Sanitize(),
		"{revisions}", pgx.Identifier{schema, "revisions"}.Sanitize(),
		"{revisions_lit}", "'"+strings.ReplaceAll(pgx.Identifier{schema, "revisions"}.Sanitize(), "'", "''")+"'",
	)
	return b, nil
}

// Close releases the backend's connections.
func (b *Backend) Close() { b.pool.Close() }

// Schema is the schema the tables live in.
func (b *Backend) Schema() string { return b.schema }

// q fills the table names into a statement.
func (b *Backend) q(sql string) string { return b.sql.Replace(sql) }

// where names a workspace's stored state in errors.
func (b *Backend) where(workspace string) string {
	return fmt.Sprintf("PostgreSQL table %s, workspace %q", b.q("{states}"), workspace)
}

// schemaDDL creates what the backend needs. Every statement is
// idempotent; open runs them under an advisory lock, because two
// sessions running CREATE ... IF NOT EXISTS at once can still collide in
// the catalog.
const schemaDDL = `
CREATE SEQUENCE IF NOT EXISTS {revisions};
CREATE TABLE IF NOT EXISTS {states} (
	workspace text COLLATE "C" PRIMARY KEY,
	revision  bigint NOT NULL,
	serial    numeric(20) NOT NULL,
	lineage   text NOT NULL,
	head      bytea NOT NULL,
	sep       bytea NOT NULL,
	tail      bytea NOT NULL,
	updated   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {resources} (
	workspace text COLLATE "C" NOT NULL REFERENCES {states} (workspace) ON DELETE CASCADE,
	address   text COLLATE "C" NOT NULL,
	doc       bytea NOT NULL,
	hash      bytea GENERATED ALWAYS AS (sha256(doc)) STORED,
	PRIMARY KEY (workspace, address)
);
CREATE TABLE IF NOT EXISTS {locks} (
	workspace text COLLATE "C" PRIMARY KEY,
	id        text NOT NULL,
	info      jsonb NOT NULL,
	expires   timestamptz NOT NULL
);`

// open creates the schema and tables once per Backend, unless they exist
// or the settings say not to. A failure is returned to the caller and
// tried again by the next one.
func (b *Backend) open(ctx context.Context) error {
	if b.ready.Load() {
		return nil
	}
	select {
	case b.setup <- struct{}{}:
		defer func() { <-b.setup }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.ready.Load() || !b.makeTable {
		b.ready.Store(true)
		return nil
	}
	var exists bool
	err := b.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL`,
		b.q("{states}"), b.q("{resources}"), b.q("{locks}"), b.q("{revisions}")).Scan(&exists)
	if err != nil {
		return fmt.Errorf("pg backend: connecting: %w", err)
	}
	if !exists {
		h := fnv.New64a()
		h.Write([]byte("dstack state schema " + b.schema))
		key := int64(h.Sum64())
		err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
				return err
			}
			if b.makeSchema {
				if _, err := tx.Exec(ctx, b.q(`CREATE SCHEMA IF NOT EXISTS {schema}`)); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, b.q(schemaDDL))
			return err
		})
		if err != nil {
			return fmt.Errorf("pg backend: creating the tables in schema %q: %w", b.schema, err)
		}
	}
	b.ready.Store(true)
	return nil
}

func (b *Backend) begin(ctx context.Context, workspace string) error {
	if workspace == "" || strings.ContainsRune(workspace, 0) {
		return fmt.Errorf("invalid workspace name %q", workspace)
	}
	return b.open(ctx)
}

// Read implements state.Backend. The header row and the resource rows
// come from one statement, so from one snapshot: a write committing
// meanwhile is seen whole or not at all.
func (b *Backend) Read(ctx context.Context, workspace string) (*state.Snapshot, error) {
	if err := b.begin(ctx, workspace); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, b.q(`
		SELECT NULL::text, revision, head, sep, tail FROM {states} WHERE workspace = $1
		UNION ALL
		SELECT address, NULL, doc, NULL, NULL FROM {resources} WHERE workspace = $1`), workspace)
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	var (
		found           bool
		rev             int64
		head, sep, tail []byte
		elems           []elem
	)
	for rows.Next() {
		var (
			addr pgtype.Text
			r    pgtype.Int8
			doc  []byte
			sp   []byte
			t    []byte
		)
		if err := rows.Scan(&addr, &r, &doc, &sp, &t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading state: %w", err)
		}
		if !addr.Valid {
			found, rev, head, sep, tail = true, r.Int64, doc, sp, t
			continue
		}
		elems = append(elems, elem{addr.String, doc})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if !found {
		return nil, state.ErrNotFound
	}
	// Encode writes resources in Go's string order; so does this sort,
	// whatever the server's collation.
	slices.SortFunc(elems, func(a, b elem) int { return strings.Compare(a.addr, b.addr) })
	docs := make([][]byte, len(elems))
	for i, e := range elems {
		docs[i] = e.doc
	}
	s, err := state.Decode(join(head, sep, tail, docs), b.where(workspace))
	if err != nil {
		return nil, state.WithVersion(err, version(rev))
	}
	addrs := make([]string, len(elems))
	sums := make([][sha256.Size]byte, len(elems))
	for i, e := range elems {
		addrs[i], sums[i] = e.addr, sha256.Sum256(e.doc)
	}
	b.rows.put(workspace, rev, addrs, sums)
	return &state.Snapshot{State: s, Version: version(rev)}, nil
}

type elem struct {
	addr string
	doc  []byte
}

func version(rev int64) state.Version { return state.Version(strconv.FormatInt(rev, 10)) }

// copyThreshold is how many new resources make COPY worth its extra
// round trips over one INSERT ... SELECT FROM unnest.
const copyThreshold = 64

// Write implements state.Backend.
func (b *Backend) Write(ctx context.Context, workspace string, s *state.State, prev state.Version, lockID string) (state.Version, error) {
	if err := b.begin(ctx, workspace); err != nil {
		return "", err
	}
	doc, err := state.Encode(s)
	if err != nil {
		return "", err
	}
	p := cut(doc, s)
	p.hashes = make([][sha256.Size]byte, len(p.docs))
	for i, d := range p.docs {
		p.hashes[i] = sha256.Sum256(d)
	}
	var prevRev int64
	if prev != "" {
		prevRev, err = strconv.ParseInt(string(prev), 10, 64)
		if err != nil {
			// Not a revision of this backend: it cannot match.
			prevRev = -1
		}
	}
	var rev int64
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if lockID != "" {
			cur, err := b.lockInfo(ctx, tx, workspace, " FOR SHARE")
			if err != nil {
				return err
			}
			if cur != nil && cur.ID != lockID && cur.Live(time.Now()) {
				return &state.LockLostError{ID: lockID, Holder: cur}
			}
		}
		serial := strconv.FormatUint(s.Serial, 10)
		var err error
		if prev == "" {
			err = tx.QueryRow(ctx, b.q(`
				INSERT INTO {states} (workspace, revision, serial, lineage, head, sep, tail)
				VALUES ($1, nextval({revisions_lit}), $2::numeric, $3, $4, $5, $6)
				ON CONFLICT (workspace) DO NOTHING
				RETURNING revision`), workspace, serial, s.Lineage, p.head, p.sep, p.tail).Scan(&rev)
		} else {
			err = tx.QueryRow(ctx, b.q(`
				UPDATE {states} SET revision = nextval({revisions_lit}), serial = $2::numeric, lineage = $3,
					head = $4, sep = $5, tail = $6, updated = now()
				WHERE workspace = $1 AND revision = $7
				RETURNING revision`), workspace, serial, s.Lineage, p.head, p.sep, p.tail, prevRev).Scan(&rev)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			var actual pgtype.Int8
			if err := tx.QueryRow(ctx, b.q(`SELECT revision FROM {states} WHERE workspace = $1`), workspace).Scan(&actual); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			c := &state.ConflictError{Workspace: workspace, Expected: prev}
			if actual.Valid {
				c.Actual = version(actual.Int64)
			}
			return c
		}
		if err != nil {
			return err
		}
		var stored rowHashes
		switch {
		case prev == "":
			stored = rowHashes{}
		default:
			stored = b.rows.get(workspace, prevRev)
		}
		return b.writeResources(ctx, tx, workspace, p, stored)
	})
	if err != nil {
		// Committed or not, what the rows hold is no longer known here.
		b.rows.forget(workspace)
	} else {
		b.rows.put(workspace, rev, p.addrs, p.hashes)
	}
	var conflict *state.ConflictError
	var lost *state.LockLostError
	if errors.As(err, &conflict) || errors.As(err, &lost) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("writing state: %w", err)
	}
	return version(rev), nil
}

// writeResources brings the resource rows of a workspace in line with p,
// touching only the rows that differ. fresh says there are none yet.
func (b *Backend) writeResources(ctx context.Context, tx pgx.Tx, workspace string, p pieces, stored rowHashes) error {
	if stored == nil {
		stored = rowHashes{}
		rows, err := tx.Query(ctx, b.q(`SELECT address, hash FROM {resources} WHERE workspace = $1`), workspace)
		if err != nil {
			return err
		}
		var addr string
		var h []byte
		_, err = pgx.ForEachRow(rows, []any{&addr, &h}, func() error {
			var sum [sha256.Size]byte
			copy(sum[:], h)
			stored[addr] = sum
			return nil
		})
		if err != nil {
			return err
		}
	}
	var (
		upd, ins []int
		gone     []string
		kept     int
	)
	for i, a := range p.addrs {
		h, ok := stored[a]
		switch {
		case !ok:
			ins = append(ins, i)
		case h != p.hashes[i]:
			upd = append(upd, i)
			kept++
		default:
			kept++
		}
	}
	if kept < len(stored) {
		have := make(map[string]bool, len(p.addrs))
		for _, a := range p.addrs {
			have[a] = true
		}
		for a := range stored {
			if !have[a] {
				gone = append(gone, a)
			}
		}
	}
	var batch pgx.Batch
	if len(gone) > 0 {
		batch.Queue(b.q(`DELETE FROM {resources} WHERE workspace = $1 AND address = ANY($2::text[])`), workspace, gone)
	}
	if len(upd) > 0 {
		addrs, docs := p.pick(upd)
		batch.Queue(b.q(`
			UPDATE {resources} r SET doc = u.doc
			FROM unnest($2::text[], $3::bytea[]) AS u(address, doc)
			WHERE r.workspace = $1 AND r.address = u.address`), workspace, addrs, docs)
	}
	if len(ins) > 0 && len(ins) <= copyThreshold {
		addrs, docs := p.pick(ins)
		batch.Queue(b.q(`
			INSERT INTO {resources} (workspace, address, doc)
			SELECT $1, u.address, u.doc FROM unnest($2::text[], $3::bytea[]) AS u(address, doc)`), workspace, addrs, docs)
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return err
		}
	}
	if len(ins) > copyThreshold {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{b.schema, "resources"}, []string{"workspace", "address", "doc"},
			pgx.CopyFromSlice(len(ins), func(i int) ([]any, error) {
				return []any{workspace, p.addrs[ins[i]], p.docs[ins[i]]}, nil
			}))
		if err != nil {
			return err
		}
	}
	return nil
}

func (p pieces) pick(idx []int) ([]string, [][]byte) {
	addrs := make([]string, len(idx))
	docs := make([][]byte, len(idx))
	for i, j := range idx {
		addrs[i], docs[i] = p.addrs[j], p.docs[j]
	}
	return addrs, docs
}

// querier is what lockInfo needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockInfo reads a workspace's lock row, or nil; suffix can add a row
// lock (" FOR SHARE").
func (b *Backend) lockInfo(ctx context.Context, q querier, workspace, suffix string) (*state.LockInfo, error) {
	var (
		id      string
		info    []byte
		expires time.Time
	)
	err := q.QueryRow(ctx, b.q(`SELECT id, info, expires FROM {locks} WHERE workspace = $1`+suffix), workspace).Scan(&id, &info, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock: %w", err)
	}
	var l state.LockInfo
	if err := json.Unmarshal(info, &l); err != nil {
		return nil, fmt.Errorf("lock of workspace %q in %s is damaged (%v); force-unlock it if no run holds it", workspace, b.q("{locks}"), err)
	}
	// The columns are what the backend compares on; the JSON is for
	// people reading the table.
	l.ID, l.Expires = id, expires.UTC()
	return &l, nil
}

// Lock implements state.Backend. One upsert takes the lock when there is
// none or its lease has run out; the row lock it takes makes two racing
// callers run one after the other, and the second finds a live lock.
func (b *Backend) Lock(ctx context.Context, workspace string, info state.LockInfo, ttl time.Duration) (*state.LockInfo, error) {
	if err := b.begin(ctx, workspace); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = b.ttl
	}
	// A lock released or expired between the upsert and the read of its
	// holder is tried again; more than a few rounds of that means heavy
	// churn, reported as an error rather than looping on.
	for range 5 {
		now := time.Now()
		l := state.PrepareLock(info, now, ttl)
		if l.Path == "" {
			l.Path = b.where(workspace)
		}
		js, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		tag, err := b.pool.Exec(ctx, b.q(`
			INSERT INTO {locks} AS l (workspace, id, info, expires) VALUES ($1, $2, $3::jsonb, $4)
			ON CONFLICT (workspace) DO UPDATE SET id = excluded.id, info = excluded.info, expires = excluded.expires
			WHERE l.expires <= $5`), workspace, l.ID, string(js), l.Expires, now)
		if err != nil {
			return nil, fmt.Errorf("taking lock: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return &l, nil
		}
		cur, err := b.lockInfo(ctx, b.pool, workspace, "")
		if err != nil {
			return nil, err
		}
		if cur != nil && cur.Live(time.Now()) {
			return nil, &state.LockedError{Holder: *cur}
		}
	}
	return nil, fmt.Errorf("taking lock of workspace %q: it kept changing hands; try again", workspace)
}

// Renew implements state.Backend. A lease that ran out but that nobody
// took is still the caller's and is renewed.
func (b *Backend) Renew(ctx context.Context, workspace, id string, ttl time.Duration) error {
	if err := b.begin(ctx, workspace); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = b.ttl
	}
	expires := time.Now().UTC().Add(ttl).Truncate(time.Microsecond)
	tag, err := b.pool.Exec(ctx, b.q(`
		UPDATE {locks} SET expires = $3, info = jsonb_set(info, '{expires}', to_jsonb($4::text))
		WHERE workspace = $1 AND id = $2`), workspace, id, expires, expires.Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("renewing lock: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	cur, err := b.lockInfo(ctx, b.pool, workspace, "")
	if err != nil {
		return err
	}
	return &state.LockLostError{ID: id, Holder: cur}
}

// Unlock implements state.Backend.
func (b *Backend) Unlock(ctx context.Context, workspace, id string) error {
	if err := b.begin(ctx, workspace); err != nil {
		return err
	}
	tag, err := b.pool.Exec(ctx, b.q(`DELETE FROM {locks} WHERE workspace = $1 AND id = $2`), workspace, id)
	if err != nil {
		return fmt.Errorf("releasing lock: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	cur, err := b.lockInfo(ctx, b.pool, workspace, "")
	if err != nil || cur == nil {
		return err
	}
	return &state.LockLostError{ID: id, Holder: cur}
}

// ForceUnlock implements state.Backend.
func (b *Backend) ForceUnlock(ctx context.Context, workspace, id string) error {
	if err := b.begin(ctx, workspace); err != nil {
		return err
	}
	tag, err := b.pool.Exec(ctx, b.q(`DELETE FROM {locks} WHERE workspace = $1 AND id = $2`), workspace, id)
	if err != nil {
		return fmt.Errorf("breaking lock: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	cur, err := b.lockInfo(ctx, b.pool, workspace, "")
	if err != nil {
		return err
	}
	if cur == nil {
		return state.ErrNotLocked
	}
	return fmt.Errorf("%w by %s: the lock is %s; nothing was unlocked", state.ErrNotLocked, id, cur.ID)
}

// LockInfo implements state.Backend. It returns the stored lock even when
// its lease has run out (Live says so), as long as nobody took it over.
func (b *Backend) LockInfo(ctx context.Context, workspace string) (*state.LockInfo, error) {
	if err := b.begin(ctx, workspace); err != nil {
		return nil, err
	}
	return b.lockInfo(ctx, b.pool, workspace, "")
}

// Workspaces implements state.Backend.
func (b *Backend) Workspaces(ctx context.Context) ([]string, error) {
	if err := b.open(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, b.q(`SELECT workspace FROM {states} ORDER BY workspace`))
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	sort.Strings(list) // Go's order, whatever the collation
	return list, nil
}

// DeleteWorkspace implements state.Backend. The lock row goes first, the
// order Write takes them in, so the two cannot deadlock.
func (b *Backend) DeleteWorkspace(ctx context.Context, workspace string) error {
	if err := b.begin(ctx, workspace); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, b.q(`DELETE FROM {locks} WHERE workspace = $1`), workspace); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, b.q(`DELETE FROM {states} WHERE workspace = $1`), workspace)
		return err
	})
	b.rows.forget(workspace)
	if err != nil {
		return fmt.Errorf("deleting workspace %s: %w", workspace, err)
	}
	return nil
}

// rowHashes maps the addresses of a workspace's resource rows to the
// SHA-256 of their bytes.
type rowHashes map[string][sha256.Size]byte

// rowCache remembers, for a few workspaces, the row hashes at one
// revision. Revisions never repeat and every change of rows makes a new
// one, so hashes known for revision prev are what the rows hold when a
// write naming prev passes its compare-and-swap: that write skips
// reading the hashes back (a one-resource write on 10,000 resources
// takes about 48 ms instead of 70). Anyone else's write makes a new
// revision, and a miss reads the hashes from the server.
type rowCache struct {
	mu sync.Mutex
	m  map[string]cachedRows
}

type cachedRows struct {
	rev    int64
	hashes rowHashes
}

// rowCacheSize is how many workspaces' hashes are kept: a run works on
// one; a few allow for tools that switch.
const rowCacheSize = 4

// get returns the hashes at rev, or nil.
func (c *rowCache) get(workspace string, rev int64) rowHashes {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[workspace]; ok && e.rev == rev {
		return e.hashes
	}
	return nil
}

func (c *rowCache) put(workspace string, rev int64, addrs []string, sums [][sha256.Size]byte) {
	h := make(rowHashes, len(addrs))
	for i, a := range addrs {
		h[a] = sums[i]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedRows{}
	}
	if _, ok := c.m[workspace]; !ok && len(c.m) >= rowCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	// A concurrent reader may hold an older revision; keep the newest.
	if e, ok := c.m[workspace]; !ok || e.rev < rev {
		c.m[workspace] = cachedRows{rev: rev, hashes: h}
	}
}

func (c *rowCache) forget(workspace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, workspace)
}
