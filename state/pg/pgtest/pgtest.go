// Package pgtest gives tests a real PostgreSQL server: the one
// DSTACK_TEST_PG_CONN_STR names when it is set, otherwise a throwaway
// cluster the test process starts once, from the server binaries
// (Debian's layout or PATH), and that a watchdog stops and removes when
// the process exits, however it exits. Each test works in a schema of its
// own, dropped at its end. state/pg/testdata/README describes the setup.
//
// It is shared by the tests of the PostgreSQL state backend and by other
// packages' tests that need a pg backend to talk to; it does not import
// state/pg, so that package's tests can use it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dstackai/dstack-go/state"
)

var (
	serverOnce sync.Once
	serverConn string
	serverErr  error
	// watchdogIn is the write end of the watchdog's stdin. Nothing ever
	// writes to it: when this process exits, however it exits, the kernel
	// closes it, and the watchdog stops the server and removes its files.
	// Kept in a variable so that no finalizer closes it early.
	watchdogIn *os.File
)

// ConnStr returns a connection string for a database the tests may use:
// DSTACK_TEST_PG_CONN_STR when it is set, otherwise that of the cluster
// this process starts the first time it is asked. The cluster is started
// at most once per process: a child process that gets the connection
// string in its settings (as the SIGKILL conformance test's child does)
// starts nothing.
func ConnStr(t testing.TB) string {
	t.Helper()
	if s := os.Getenv("DSTACK_TEST_PG_CONN_STR"); s != "" {
		return s
	}
	serverOnce.Do(func() { serverConn, serverErr = startServer() })
	if serverErr != nil {
		t.Fatalf("starting a PostgreSQL server for the tests: %v", serverErr)
	}
	return serverConn
}

// Config returns the settings of a pg state backend (conn_str and
// schema_name) in a fresh schema, which is dropped when the test ends.
func Config(t testing.TB) map[string]string {
	t.Helper()
	conn := ConnStr(t)
	schema := "test_" + state.NewLockID()[:16]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, conn)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return map[string]string{"conn_str": conn, "schema_name": schema}
}

// serverBinDir finds initdb, pg_ctl and postgres: Debian keeps them in
// /usr/lib/postgresql/<major>/bin (the newest major wins), other systems
// on PATH.
func serverBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return false
			}
		}
		return true
	}
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("the PostgreSQL server (initdb, pg_ctl, postgres) is not installed: " +
		"none under /usr/lib/postgresql/*/bin or on PATH. Install it (Debian: apt-get install postgresql) " +
		"or point DSTACK_TEST_PG_CONN_STR at a server the tests may create schemas in")
}

// serverUser is who runs the server. PostgreSQL refuses to run as root,
// so under root it is the postgres system user, created when missing.
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run the server as; creating one: %v: %s", err, out)
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// watchdogScript waits for its stdin to close (the test process ended),
// stops the server the way pg_ctl stop -m immediate does (SIGQUIT to the
// postmaster), and removes the cluster. It ignores the signals a Ctrl-C
// sends the test's process group, and runs in a group of its own.
const watchdogScript = `trap '' INT TERM HUP
read _
if [ -f "$D/data/postmaster.pid" ]; then
	pid=$(head -n 1 "$D/data/postmaster.pid")
	kill -QUIT "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
rm -rf "$D"
`

// startServer creates a cluster in a temporary directory, starts it on a
// free port of 127.0.0.1 (its socket in the same directory), creates the
// database dstack_test and returns its connection string.
func startServer() (string, error) {
	bin, err := serverBinDir()
	if err != nil {
		return "", err
	}
	cred, err := serverUser()
	if err != nil {
		return "", err
	}
	// Under /tmp rather than TMPDIR: the postgres user must be able to
	// reach it, and the socket path must stay short.
	base := os.TempDir()
	if cred != nil {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "dstack-pg-")
	if err != nil {
		return "", err
	}
	wd := exec.Command("sh", "-c", watchdogScript)
	wd.Env = append(os.Environ(), "D="+dir)
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	wd.Stdin = pr
	err = wd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		return "", fmt.Errorf("starting the cleanup watchdog: %w", err)
	}
	watchdogIn = pw
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	run := func(name string, args ...string) error {
		log, err := os.Create(filepath.Join(dir, name+".out"))
		if err != nil {
			return err
		}
		defer log.Close()
		if cred != nil {
			_ = log.Chown(int(cred.Uid), int(cred.Gid))
		}
		// Output to a file, not a pipe: the server pg_ctl leaves running
		// must not hold a pipe of ours open.
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(log.Name())
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return "", err
	}
	// The port is free when picked but may be taken before the server
	// binds it; then pick another.
	var port int
	for attempt := 0; ; attempt++ {
		port, err = freePort()
		if err != nil {
			return "", err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=300", port, dir)
		err = run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return "", fmt.Errorf("%v\nserver log:\n%s", err, log)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `CREATE DATABASE dstack_test`); err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/dstack_test?sslmode=disable", port), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
