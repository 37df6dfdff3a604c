package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateSource reports a service's request rate, as the gateway in front of
// it measures it. The loop scales on it.
type RateSource interface {
	Rate(ctx context.Context, service string, window time.Duration) (Rate, error)
}

// Rate is a service's load.
type Rate struct {
	// RPS is the requests per second over the window.
	RPS float64
	// Queued is how many requests wait for a replica (a service scaled
	// to zero): they need one at once.
	Queued int
}

// GatewayRates reads rates from a gateway's admin API: GET /api/stats
// with a bearer token (package gateway documents the shape). The window
// asked for is matched with the gateway's windows: the shortest at least
// as long, else the longest; without windows, its "rps" (60 s).
type GatewayRates struct {
	// URL is the admin API's base, "http://127.0.0.1:8081".
	URL   string
	Token string
	// Project is the project of the services ("main" when empty).
	Project string
	Client  *http.Client
	// MaxAge is how long one read of the stats serves every service's
	// rate (a tick asks for each service in turn); zero: every call reads.
	MaxAge time.Duration

	mu      sync.Mutex
	fetched time.Time
	stats   *gatewayStats
}

// gatewayStats is GET /api/stats's answer.
type gatewayStats struct {
	Services []struct {
		Project string  `json:"project"`
		Name    string  `json:"name"`
		RPS     float64 `json:"rps"`
		Queued  int     `json:"queued"`
		Windows map[string]struct {
			Requests float64 `json:"requests"`
		} `json:"windows"`
	} `json:"services"`
}

// Rate implements RateSource.
func (g *GatewayRates) Rate(ctx context.Context, service string, window time.Duration) (Rate, error) {
	st, err := g.read(ctx)
	if err != nil {
		return Rate{}, err
	}
	return st.rate(cmp.Or(g.Project, "main"), service, window), nil
}

// read returns the gateway's stats, read again once older than MaxAge.
func (g *GatewayRates) read(ctx context.Context) (*gatewayStats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stats != nil && time.Since(g.fetched) < g.MaxAge {
		return g.stats, nil
	}
	hc := g.Client
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(g.URL, "/")+"/api/stats", nil)
	if err != nil {
		return nil, err
	}
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the gateway's stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the gateway's stats: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the gateway's stats: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var st gatewayStats
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("reading the gateway's stats: %w", err)
	}
	g.stats, g.fetched = &st, time.Now()
	return &st, nil
}

// rate is one service's rate over the window: from the shortest of the
// gateway's windows at least as long, else its longest, else its rps.
func (st *gatewayStats) rate(project, service string, window time.Duration) Rate {
	for _, s := range st.Services {
		if s.Name != service || (s.Project != "" && s.Project != project) {
			continue
		}
		r := Rate{RPS: s.RPS, Queued: s.Queued}
		best, bestSec, longest, longSec := "", math.MaxInt, "", 0
		for k := range s.Windows {
			sec, err := strconv.Atoi(k)
			if err != nil || sec <= 0 {
				continue
			}
			if sec >= int(window.Seconds()) && sec < bestSec {
				best, bestSec = k, sec
			}
			if sec > longSec {
				longest, longSec = k, sec
			}
		}
		switch {
		case best != "":
			r.RPS = s.Windows[best].Requests / float64(bestSec)
		case longest != "":
			r.RPS = s.Windows[longest].Requests / float64(longSec)
		}
		return r
	}
	// No request yet: the gateway lists a service once it saw one.
	return Rate{}
}
