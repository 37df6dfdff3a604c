package gateway

import (
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// limiter applies a service's rate limits: the longest prefix that
// matches a path picks the limit, and each client (IP address, or value
// of the limit's header) has its own bucket. A bucket holds burst+1
// requests and refills at rps, as nginx's limit_req with burst and
// nodelay lets requests through.
type limiter struct {
	rules []limitRule
	mu    sync.Mutex
	// buckets by rule index and client key.
	buckets map[bucketKey]*bucket
}

type limitRule struct {
	prefix string
	rps    float64
	size   float64
	header string
}

type bucketKey struct {
	rule int
	key  string
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the memory clients can make the limiter hold; past
// it, full buckets (clients idle long enough) are dropped.
const maxBuckets = 100_000

func newLimiter(rls []RateLimit) *limiter {
	l := &limiter{buckets: map[bucketKey]*bucket{}}
	for _, rl := range rls {
		l.rules = append(l.rules, limitRule{prefix: cmpOr(rl.Prefix, "/"), rps: rl.RPS, size: float64(rl.Burst + 1), header: rl.Header})
	}
	sort.SliceStable(l.rules, func(i, j int) bool { return len(l.rules[i].prefix) > len(l.rules[j].prefix) })
	return l
}

// allow reports whether a request for path from ip (with header h) is
// within its limit, and takes it from the bucket if so.
func (l *limiter) allow(path, ip string, h http.Header, now time.Time) bool {
	if len(l.rules) == 0 {
		return true
	}
	ri := -1
	for i, r := range l.rules {
		if strings.HasPrefix(path, r.prefix) {
			ri = i
			break
		}
	}
	if ri < 0 {
		return true
	}
	r := l.rules[ri]
	key := ip
	if r.header != "" {
		key = h.Get(r.header)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := bucketKey{ri, key}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: r.size, last: now}
		l.buckets[k] = b
	}
	b.tokens = min(r.size, b.tokens+now.Sub(b.last).Seconds()*r.rps)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		r := l.rules[k.rule]
		if b.tokens+now.Sub(b.last).Seconds()*r.rps >= r.size {
			delete(l.buckets, k)
		}
	}
}
