package lang_test

import (
	"testing"
	"time"

	"github.com/dstackai/dstack-go/lang"
)

// TestCronNext: the next time a cron expression names, in UTC, for the
// forms dstack's schedules use.
func TestCronNext(t *testing.T) {
	at := time.Date(2026, 12, 7, 23, 50, 0, 0, time.UTC) // a Monday
	for _, tc := range []struct{ expr, want string }{
		{"0 3 * * *", "2026-12-08T03:00:00Z"},
		{"*/15 * * * *", "2026-12-08T00:00:00Z"},
		{"50 23 * * *", "2026-12-08T23:50:00Z"}, // strictly after
		{"0 9 * * sat", "2026-12-12T09:00:00Z"},
		{"0 9 * * 0", "2026-12-13T09:00:00Z"},
		{"0 9 * * 7", "2026-12-13T09:00:00Z"},
		{"0 0 1 jan *", "2027-01-01T00:00:00Z"},
		{"0 0 13 * fri", "2026-12-11T00:00:00Z"}, // either day field
		{"5-10/5 2 * * *", "2026-12-08T02:05:00Z"},
	} {
		c, err := lang.ParseCron(tc.expr)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		got, ok := c.Next(at)
		if !ok || got.Format(time.RFC3339) != tc.want {
			t.Errorf("%q after %s: %s %v, want %s", tc.expr, at, got.Format(time.RFC3339), ok, tc.want)
		}
	}
	c, _ := lang.ParseCron("0 0 31 feb *")
	if _, ok := c.Next(at); ok {
		t.Error("the 31st of February came")
	}
}
