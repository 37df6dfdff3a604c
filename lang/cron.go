package lang

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed cron expression of five fields, as `schedule.cron`
// takes them (in UTC): minute (0-59), hour (0-23), day of month (1-31),
// month (1-12 or jan-dec), day of week (0-7 or sun-sat, 0 and 7 are
// Sunday). A field is `*`, a number or name, a range `a-b`, any of these
// with a step `/n`, or a comma-separated list of them. As in cron, when
// both day fields are restricted a day matching either runs.
type Cron struct {
	minute, hour, dom, month, dow []bool
	domAny, dowAny                bool
}

var cronMonths = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
var cronDays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseCron parses a five-field cron expression.
func ParseCron(expr string) (*Cron, error) {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return nil, fmt.Errorf("cron expression %q: want five fields (minute hour day-of-month month day-of-week), got %d", expr, len(f))
	}
	c := &Cron{}
	var err error
	type spec struct {
		dst      *[]bool
		name     string
		lo, hi   int
		names    []string
		namesAt0 int
	}
	for i, s := range []spec{
		{&c.minute, "minute", 0, 59, nil, 0},
		{&c.hour, "hour", 0, 23, nil, 0},
		{&c.dom, "day of month", 1, 31, nil, 0},
		{&c.month, "month", 1, 12, cronMonths, 1},
		{&c.dow, "day of week", 0, 7, cronDays, 0},
	} {
		if *s.dst, err = cronField(f[i], s.lo, s.hi, s.names, s.namesAt0); err != nil {
			return nil, fmt.Errorf("cron expression %q: %s field %q: %w", expr, s.name, f[i], err)
		}
	}
	c.domAny, c.dowAny = f[2] == "*", f[4] == "*"
	if c.dow[7] {
		c.dow[0] = true
	}
	return c, nil
}

func cronField(f string, lo, hi int, names []string, namesAt int) ([]bool, error) {
	set := make([]bool, hi+1)
	num := func(s string) (int, error) {
		for i, n := range names {
			if strings.EqualFold(s, n) {
				return i + namesAt, nil
			}
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
		}
		return v, nil
	}
	for _, part := range strings.Split(f, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			v, err := strconv.Atoi(stepS)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("step %q is not a positive number", stepS)
			}
			step = v
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			x, y, _ := strings.Cut(rng, "-")
			var err error
			if a, err = num(x); err != nil {
				return nil, err
			}
			if b, err = num(y); err != nil {
				return nil, err
			}
			if a > b {
				return nil, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			v, err := num(rng)
			if err != nil {
				return nil, err
			}
			a, b = v, v
			if hasStep {
				b = hi
			}
		}
		for v := a; v <= b; v += step {
			set[v] = true
		}
	}
	return set, nil
}

func (c *Cron) day(t time.Time) bool {
	dom, dow := c.dom[t.Day()], c.dow[int(t.Weekday())]
	switch {
	case c.domAny && c.dowAny:
		return true
	case c.domAny:
		return dow
	case c.dowAny:
		return dom
	}
	return dom || dow
}

// Next is the first time after t (to the minute, in UTC) that the
// expression names; false when there is none within five years (the
// 31st of February).
func (c *Cron) Next(t time.Time) (time.Time, bool) {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case !c.month[int(t.Month())]:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.day(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case !c.hour[t.Hour()]:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case !c.minute[t.Minute()]:
			t = t.Add(time.Minute)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}
