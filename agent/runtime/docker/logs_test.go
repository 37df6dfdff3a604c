package docker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/pkg/stdcopy"
)

// fakeEngine keeps a container's log as the Engine does: messages in the
// order written, each with the time it was stamped, and serves it as the
// logs endpoint does for a given since.
type fakeEngine struct {
	msgs  []fakeMsg
	clock int64
}

type fakeMsg struct {
	ts     int64
	stream stdcopy.StdType
	line   []byte
}

// stream is the endpoint's body for since (Unix ns, 0 for all) with
// timestamps: one stdcopy frame per message not stamped before since.
func (e *fakeEngine) stream(since int64) []byte {
	var b bytes.Buffer
	for _, m := range e.msgs {
		if since > 0 && m.ts < since {
			continue
		}
		payload := append([]byte(time.Unix(0, m.ts).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")+" "), m.line...)
		var hdr [8]byte
		hdr[0] = byte(m.stream)
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
		b.Write(hdr[:])
		b.Write(payload)
	}
	return b.Bytes()
}

func (e *fakeEngine) want() []byte {
	var b bytes.Buffer
	for _, m := range e.msgs {
		b.Write(m.line)
	}
	return b.Bytes()
}

// generate adds n messages stamped about step apart, with the disorder the
// Engine's two copiers (stdout, stderr) produce: a message now and then
// stamped a little before the one written ahead of it, and runs of equal
// stamps. Long lines come in partial pieces without a newline.
func (e *fakeEngine) generate(r *rand.Rand, n int, step int64) {
	if e.clock == 0 {
		e.clock = 1_700_000_000_000_000_000
	}
	for i := 0; i < n; i++ {
		ts := e.clock
		switch r.IntN(10) {
		case 0: // same stamp as the previous message
			if len(e.msgs) > 0 {
				ts = e.msgs[len(e.msgs)-1].ts
			}
		case 1: // stamped a little before the message written ahead of it
			ts -= r.Int64N(min(int64(time.Millisecond), 50*step))
		default:
			e.clock += 1 + r.Int64N(2*step)
			ts = e.clock
		}
		st := stdcopy.Stdout
		if r.IntN(3) == 0 {
			st = stdcopy.Stderr
		}
		line := fmt.Appendf(nil, "line %d %s", len(e.msgs), bytes.Repeat([]byte("x"), r.IntN(40)))
		if r.IntN(20) != 0 {
			line = append(line, '\n')
		}
		e.msgs = append(e.msgs, fakeMsg{ts: ts, stream: st, line: line})
	}
}

// brokenReader gives data up to cut and then fails, as a stream whose
// connection dies does.
type brokenReader struct {
	data []byte
	cut  int
	off  int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.off >= b.cut {
		if b.cut == len(b.data) {
			return 0, io.EOF
		}
		return 0, io.ErrUnexpectedEOF
	}
	// Short reads, so that batches flush at odd places.
	n := copy(p[:min(len(p), 1+rand.IntN(4096))], b.data[b.off:b.cut])
	b.off += n
	return n, nil
}

// jsonFile is the Engine's json-file log of the messages.
func (e *fakeEngine) jsonFile() []byte {
	var b bytes.Buffer
	for _, m := range e.msgs {
		stream := "stdout"
		if m.stream == stdcopy.Stderr {
			stream = "stderr"
		}
		line, _ := json.Marshal(engineEntry{Log: string(m.line), Stream: stream, Time: time.Unix(0, m.ts).UTC()})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// readRound has f read what the engine has from f's cursor, through the
// Engine's file (when f follows it) or the endpoint, with the source
// breaking after cut bytes (cut < 0: not at all).
func readRound(t *testing.T, f *logFollower, eng *fakeEngine, engPath string, r *rand.Rand, final bool) error {
	t.Helper()
	if f.cur.off >= 0 {
		data := eng.jsonFile()
		if err := os.WriteFile(engPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src := data[f.cur.off:]
		cut := len(src)
		if !final {
			cut = r.IntN(len(src) + 1)
		}
		stopped := make(chan struct{})
		close(stopped) // read to the end of what is there
		return f.copyFile(&brokenReader{data: src, cut: cut}, newSession(f.cur), f.cur.off, stopped, 0)
	}
	data := eng.stream(f.cur.since)
	cut := len(data)
	if !final {
		cut = r.IntN(len(data) + 1)
	}
	return f.copyStream(bufio.NewReaderSize(&brokenReader{data: data, cut: cut}, 64<<10), newSession(f.cur))
}

// TestLogResumeExact drives the follower through many crashes of the
// agent: the source breaks anywhere (even inside a frame or a line), a
// batch may reach the file without its cursor, more output arrives while
// the agent is down; the log must end up exactly the container's output.
func TestLogResumeExact(t *testing.T) {
	for _, source := range []string{"endpoint", "file"} {
		for _, tc := range []struct {
			name  string
			step  int64 // mean spacing of stamps
			n     int   // messages per round
			seeds uint64
		}{
			{"sparse", int64(100 * time.Millisecond), 50, 20},
			{"dense", int64(time.Microsecond), 3000, 8}, // overflows the ring of recent stamps
			{"burst", 1, 500, 20},                       // many equal stamps
		} {
			t.Run(source+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				for seed := uint64(0); seed < tc.seeds; seed++ {
					r := rand.New(rand.NewPCG(seed, 7))
					dir := t.TempDir()
					logPath, engPath := filepath.Join(dir, "job.log"), filepath.Join(dir, "engine.log")
					engFile := ""
					if source == "file" {
						engFile = engPath
						os.WriteFile(engPath, nil, 0o644)
					}
					const earlier = "agent: earlier output\n"
					if err := os.WriteFile(logPath, []byte(earlier), 0o644); err != nil {
						t.Fatal(err)
					}
					eng := &fakeEngine{}
					f, err := newLogFollower(nil, "c", logPath, true, "")
					if err != nil {
						t.Fatal(err)
					}
					if err := f.useFile(engFile); err != nil {
						t.Fatal(err)
					}
					for round := 0; ; round++ {
						if round < 8 {
							eng.generate(r, r.IntN(tc.n)+1, tc.step)
						}
						final := round >= 8
						err := readRound(t, f, eng, engPath, r, final)
						if final && err != nil {
							t.Fatalf("seed %d round %d: %v", seed, round, err)
						}
						if final {
							break
						}
						if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Fatalf("seed %d round %d: broken source gave %v", seed, round, err)
						}
						// The agent dies; maybe after writing more of the log
						// than its cursor says.
						f.finish()
						if r.IntN(2) == 0 {
							got, _ := os.ReadFile(logPath)
							want := append([]byte(earlier), eng.want()...)
							if len(got) < len(want) && bytes.Equal(got, want[:len(got)]) {
								extra := want[len(got):min(len(want), len(got)+r.IntN(200))]
								af, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
								af.Write(extra)
								af.Close()
							}
						}
						if f, err = newLogFollower(nil, "c", logPath, false, engFile); err != nil {
							t.Fatal(err)
						}
						if (f.cur.off >= 0) != (source == "file") {
							t.Fatalf("seed %d round %d: resumed with offset %d following the %s", seed, round, f.cur.off, source)
						}
					}
					f.finish()
					checkLog(t, fmt.Sprint("seed ", seed), logPath, append([]byte(earlier), eng.want()...))
				}
			})
		}
	}
}

func checkLog(t *testing.T, what, logPath string, want []byte) {
	t.Helper()
	got, _ := os.ReadFile(logPath)
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: log differs at byte %d of %d (want %d):\ngot  %q\nwant %q", what, i, len(got), len(want),
			got[max(0, i-80):min(len(got), i+80)], want[max(0, i-80):min(len(want), i+80)])
	}
}

// TestLogFileToEndpoint: an agent follows the Engine's file; the next
// finds it unreadable and goes on through the endpoint, from the cursor.
func TestLogFileToEndpoint(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 9))
		dir := t.TempDir()
		logPath, engPath := filepath.Join(dir, "job.log"), filepath.Join(dir, "engine.log")
		os.WriteFile(engPath, nil, 0o644)
		eng := &fakeEngine{}
		f, err := newLogFollower(nil, "c", logPath, true, "")
		if err != nil {
			t.Fatal(err)
		}
		f.useFile(engPath)
		for round := 0; round < 3; round++ {
			// Each agent reads several seconds of output to its end.
			eng.generate(r, 100, int64(100*time.Millisecond))
			if err := readRound(t, f, eng, engPath, r, true); err != nil {
				t.Fatal(err)
			}
			f.finish()
			engFile := engPath
			if round == 1 {
				engFile = "" // gone for the agent after the second
			}
			if f, err = newLogFollower(nil, "c", logPath, false, engFile); err != nil {
				t.Fatal(err)
			}
		}
		if f.cur.off != -1 {
			t.Fatalf("offset %d after the file went away", f.cur.off)
		}
		if err := readRound(t, f, eng, engPath, r, true); err != nil {
			t.Fatal(err)
		}
		f.finish()
		checkLog(t, fmt.Sprint("seed ", seed), logPath, eng.want())
	}
}

// TestLogFileGrows follows a file the "Engine" appends to while the
// container runs, including half-written lines, until it stops.
func TestLogFileGrows(t *testing.T) {
	dir := t.TempDir()
	logPath, engPath := filepath.Join(dir, "job.log"), filepath.Join(dir, "engine.log")
	eng := &fakeEngine{}
	eng.generate(rand.New(rand.NewPCG(1, 1)), 5000, int64(time.Microsecond))
	data := eng.jsonFile()
	w, err := os.Create(engPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := newLogFollower(nil, "c", logPath, true, "")
	if err != nil {
		t.Fatal(err)
	}
	f.useFile(engPath)
	rf, err := os.Open(engPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	stopped := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.copyFile(rf, newSession(f.cur), 0, stopped, time.Millisecond) }()
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+rand.IntN(3000))
		w.Write(data[off : off+n])
		off += n
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	}
	w.Close()
	close(stopped)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.finish()
	checkLog(t, "grown file", logPath, eng.want())
	c, ok := decodeCursor(must(os.ReadFile(logPath + CursorSuffix)))
	if !ok || c.off != int64(len(data)) {
		t.Fatalf("cursor %+v, want offset %d", c, len(data))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCursorEncoding(t *testing.T) {
	for _, c := range []cursor{
		{since: 1_700_000_000_123_456_789, skip: 42, size: 1 << 40, off: -1},
		{since: 0, skip: 0, size: 0, off: 1<<62 + 5},
	} {
		b := c.encode()
		if len(b) != cursorLen {
			t.Fatalf("encoded cursor is %d bytes, want %d", len(b), cursorLen)
		}
		got, ok := decodeCursor(b)
		if !ok || got != c {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, ok)
		}
	}
	b := cursor{since: 1, off: 2}.encode()
	for _, bad := range []string{"", "v2 1 2 3 4\n", "v1 " + string(b[3:]), string(b[:40])} {
		if _, ok := decodeCursor([]byte(bad)); ok {
			t.Errorf("decodeCursor(%q) succeeded", bad)
		}
	}
}

func TestSplitTimestamp(t *testing.T) {
	ts, line, ok := splitTimestamp([]byte("2024-05-06T07:08:09.000000123Z hello world\n"))
	want := time.Date(2024, 5, 6, 7, 8, 9, 123, time.UTC).UnixNano()
	if !ok || ts != want || string(line) != "hello world\n" {
		t.Fatalf("got %d %q %v", ts, line, ok)
	}
	if _, line, ok := splitTimestamp([]byte("no stamp here")); ok || string(line) != "no stamp here" {
		t.Fatalf("got %q %v", line, ok)
	}
}

// TestLogFileRotated: where the Engine rotates its file, the follower
// notices at the end of the old one and stops reading it (to go on through
// the endpoint), with its cursor after the last message it wrote.
func TestLogFileRotated(t *testing.T) {
	dir := t.TempDir()
	logPath, engPath := filepath.Join(dir, "job.log"), filepath.Join(dir, "engine.log")
	eng := &fakeEngine{}
	eng.generate(rand.New(rand.NewPCG(2, 2)), 100, int64(time.Millisecond))
	data := eng.jsonFile()
	if err := os.WriteFile(engPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := newLogFollower(nil, "c", logPath, true, "")
	if err != nil {
		t.Fatal(err)
	}
	f.useFile(engPath)
	fh, err := os.Open(engPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	done := make(chan error, 1)
	go func() {
		done <- f.copyFile(&rotationCheck{File: fh, path: engPath}, newSession(f.cur), 0, make(chan struct{}), time.Millisecond)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := os.Rename(engPath, engPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(engPath, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errRotated) {
			t.Fatalf("copyFile: %v, want errRotated", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("copyFile did not notice the rotation")
	}
	f.finish()
	checkLog(t, "rotated", logPath, eng.want())
	if f.cur.off != int64(len(data)) {
		t.Fatalf("offset %d, want %d", f.cur.off, len(data))
	}
}
