package gateway

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// statsSeconds is how far back per-service statistics go.
const statsSeconds = 300

// Windows are the window lengths (seconds) GET /api/stats reports, as
// dstack's gateway does.
var Windows = []int{30, 60, 300}

// RPSWindow is the window (seconds) of Stats' RPS.
const RPSWindow = 60

// serviceStats counts one service's requests per second.
type serviceStats struct {
	inFlight atomic.Int64
	queued   atomic.Int64
	mu       sync.Mutex
	slots    [statsSeconds]slot
}

type slot struct {
	sec   int64
	count int64
	nanos int64
}

func (s *serviceStats) record(end time.Time, d time.Duration) {
	sec := end.Unix()
	s.mu.Lock()
	sl := &s.slots[sec%statsSeconds]
	if sl.sec != sec {
		*sl = slot{sec: sec}
	}
	sl.count++
	sl.nanos += int64(d)
	s.mu.Unlock()
}

// window sums the requests that ended in the last n seconds before now
// (the current second included).
func (s *serviceStats) window(now time.Time, n int) (count int64, nanos int64) {
	cur := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.slots {
		if sl.sec > cur-int64(n) && sl.sec <= cur {
			count += sl.count
			nanos += sl.nanos
		}
	}
	return count, nanos
}

// Stats is GET /api/stats' answer.
type Stats struct {
	Services []ServiceStats `json:"services"`
}

// ServiceStats is one service's statistics.
type ServiceStats struct {
	Project  string  `json:"project"`
	Name     string  `json:"name"`
	RPS      float64 `json:"rps"`
	InFlight int64   `json:"in_flight"`
	Queued   int64   `json:"queued"`
	// Windows by length in seconds ("30", "60", "300").
	Windows map[string]WindowStats `json:"windows"`
}

// WindowStats is a service's requests over one window.
type WindowStats struct {
	Requests int64 `json:"requests"`
	// RequestTime is the mean request time in seconds.
	RequestTime float64 `json:"request_time"`
}

// Stats returns the statistics of every service of the current table.
func (s *Server) Stats() Stats {
	c := s.cur.Load()
	now := s.opts.Now()
	out := Stats{Services: []ServiceStats{}}
	for name, rt := range c.services {
		st := rt.stats
		ss := ServiceStats{Project: c.project, Name: name, InFlight: st.inFlight.Load(), Queued: st.queued.Load(), Windows: map[string]WindowStats{}}
		for _, w := range Windows {
			n, nanos := st.window(now, w)
			ws := WindowStats{Requests: n}
			if n > 0 {
				ws.RequestTime = time.Duration(nanos / n).Seconds()
			}
			ss.Windows[strconv.Itoa(w)] = ws
			if w == RPSWindow {
				ss.RPS = float64(n) / float64(w)
			}
		}
		out.Services = append(out.Services, ss)
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Name < out.Services[j].Name })
	return out
}
