package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"
)

// route is one service as the current table has it.
type route struct {
	svc      Service
	replicas []*replica
	next     atomic.Uint64
	limits   *limiter
	stats    *serviceStats
}

// replica is one replica's address and health.
type replica struct {
	url *url.URL
	// downUntil is when a replica that could not be reached is tried
	// again (Unix nanoseconds; 0: up).
	downUntil atomic.Int64
}

func newRoute(svc Service, old *route, s *Server) *route {
	r := &route{svc: svc, stats: s.statsFor(svc.Name)}
	for _, raw := range svc.Replicas {
		u, _ := url.Parse(raw) // Validate checked it
		rep := &replica{url: u}
		if old != nil {
			// A replica kept from the last table keeps its health.
			for _, o := range old.replicas {
				if o.url.String() == u.String() {
					rep = o
				}
			}
		}
		r.replicas = append(r.replicas, rep)
	}
	if old != nil && slices.Equal(old.svc.RateLimits, svc.RateLimits) {
		r.limits = old.limits // counts carry over
		r.next.Store(old.next.Load())
	} else {
		r.limits = newLimiter(svc.RateLimits)
	}
	return r
}

// pick returns the next replica in turn that is neither in tried nor set
// aside; failing that, the next one not in tried; nil when every replica
// was tried.
func (r *route) pick(now int64, tried []*replica) *replica {
	n := len(r.replicas)
	if n == 0 {
		return nil
	}
	start := int(r.next.Add(1) % uint64(n))
	var fallback *replica
	for i := range n {
		rep := r.replicas[(start+i)%n]
		if slices.Contains(tried, rep) {
			continue
		}
		if rep.downUntil.Load() <= now {
			return rep
		}
		if fallback == nil {
			fallback = rep
		}
	}
	return fallback
}

// balancer is the proxy's transport: it sends each request to a replica
// of its route, and a retriable request that failed on one replica to
// the next.
type balancer struct {
	base    http.RoundTripper
	downFor time.Duration
	now     func() time.Time
}

var errNoReplica = errors.New("no replica")

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(callKey{}).(*call)
	if c == nil {
		return nil, errors.New("gateway: request without a route")
	}
	var tried []*replica
	var lastErr error
	for {
		rep := c.route.pick(b.now().UnixNano(), tried)
		if rep == nil {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoReplica
		}
		out := *req
		u := *req.URL
		u.Scheme, u.Host = rep.url.Scheme, rep.url.Host
		if rep.url.Path != "" && rep.url.Path != "/" {
			u.Path = rep.url.Path + u.Path
		}
		out.URL = &u
		if len(tried) > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			out.Body = body
		}
		tried = append(tried, rep)
		resp, err := b.base.RoundTrip(&out)
		if err == nil {
			rep.downUntil.Store(0)
			return resp, nil
		}
		if req.Context().Err() != nil {
			return nil, err
		}
		lastErr = err
		rep.downUntil.Store(b.now().Add(b.downFor).UnixNano())
		if !retriable(req, err) {
			return nil, err
		}
	}
}

// retriable reports whether a request that failed with err may be sent
// to another replica: its body can be sent again, and either its method
// is idempotent or it never reached the replica (the connection was
// refused).
func retriable(req *http.Request, err error) bool {
	rewindable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !rewindable {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
