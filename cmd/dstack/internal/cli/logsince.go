package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// parseSince reads logs' -since: a duration before now ("90s", "10m",
// "1h30m", and "2d" for days, as dstack takes them) or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok && err != nil {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("-since %q: want a duration (30s, 10m, 2h, 1d) or an RFC 3339 time (2026-09-24T15:30:00Z)", v)
	}
	return now.Add(-d), nil
}

// streamLogsSince is streamLogs from the first line written at or after
// t.
func streamLogsSince(ctx context.Context, set providers.Set, in *state.Instance, t time.Time, follow bool, w io.Writer) error {
	p, err := set.For(in.Provider)
	if err != nil {
		return err
	}
	tl, ok := p.(providers.TimedLogs)
	if !ok {
		return fmt.Errorf("backend %s cannot read logs from a time (-since)", in.Provider)
	}
	rc, err := tl.LogsSince(ctx, in.ProviderID, t, follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}
