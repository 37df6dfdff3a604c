package agent_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
)

// TestLogsSinceTime: the agent dates a job's output as it grows, and a
// read from a time starts at the first whole line written after it.
func TestLogsSinceTime(t *testing.T) {
	a := startAgent(t, t.TempDir())
	before := time.Now()
	a.submit(agent.JobSpec{ID: "timed", Commands: []string{
		"echo one", "sleep 1.5", "printf two-", "sleep 1.5", "echo end-of-two", "echo three", "sleep 600"}})
	a.waitLog("timed", "one\n")
	time.Sleep(400 * time.Millisecond) // past the index's next look
	t1 := time.Now()
	a.waitLog("timed", "one\ntwo-")
	time.Sleep(400 * time.Millisecond)
	t2 := time.Now() // inside the line "two-end-of-two"
	a.waitLog("timed", "three\n")
	time.Sleep(400 * time.Millisecond)
	t3 := time.Now() // the index dates output to within 200 ms

	read := func(at time.Time) string {
		t.Helper()
		s, err := a.c.LogsSince(t.Context(), "timed", at, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b, err := io.ReadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"before the job", before, "one\ntwo-end-of-two\nthree\n"},
		{"between lines", t1, "two-end-of-two\nthree\n"},
		{"inside a line", t2, "three\n"},
		{"after the last line", t3, ""},
		{"far ahead", time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC), ""},
	} {
		if got := read(tc.at); got != tc.want {
			t.Errorf("%s: log since %s = %q, want %q", tc.name, tc.at.Format(time.RFC3339Nano), got, tc.want)
		}
	}
	// Once the job has ended its last output is dated too.
	if _, err := a.c.Stop(t.Context(), "timed", agent.StopRequest{Abort: true}); err != nil {
		t.Fatal(err)
	}
	if got := read(t2); got != "three\n" {
		t.Errorf("after the end: log since t2 = %q", got)
	}
	if got := read(t3); got != "" {
		t.Errorf("after the end: log since t3 = %q", got)
	}
	// A time that is not RFC 3339 is refused.
	req, err := http.NewRequest(http.MethodGet, a.http.URL+"/jobs/timed/logs?since_time=yesterday", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("since_time=yesterday: %s", resp.Status)
	}
	_, err = a.c.LogsSince(t.Context(), "missing", time.Now(), false)
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a job that does not exist: %v", err)
	}
}
