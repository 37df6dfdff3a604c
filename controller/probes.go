package controller

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/state"
)

// probeReplicas sends each running replica of a service its probes, once
// a tick (probes with until_ready are left to the replica's start), and
// asks to replace a replica that failed opts.ProbeFailures rounds in a
// row.
func (l *Loop) probeReplicas(ctx context.Context, s *lang.Service, prior *state.Resource, ctl *planner.Control) {
	var probes []lang.Probe
	for _, p := range s.Probes {
		if p.UntilReady == nil || !*p.UntilReady {
			probes = append(probes, p)
		}
	}
	if len(probes) == 0 || s.Port == nil {
		return
	}
	// Each replica is probed at once beside the others, so that a tick
	// (which holds the state's lock) waits for one probe timeout at most.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, in := range prior.Instances {
		if in.Status != providers.StatusRunning || in.ProviderID == "" {
			continue
		}
		hostPort := publishedPort(in, s.Port.ContainerPort)
		if hostPort == 0 {
			continue
		}
		hc, base, err := l.replicaClient(in, hostPort)
		if err != nil {
			l.logf("%s[%d]: %v", prior.Address, in.Index, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var failed error
			for i, p := range probes {
				if err := sendProbe(ctx, hc, base, p); err != nil {
					failed = fmt.Errorf("probe %d (%s %s): %w", i, strings.ToUpper(cmp.Or(p.Method, "get")), cmp.Or(p.URL, "/"), err)
					break
				}
			}
			l.mu.Lock()
			if failed == nil {
				delete(l.probeFails, in.Token)
				l.mu.Unlock()
				return
			}
			l.probeFails[in.Token]++
			n := l.probeFails[in.Token]
			l.mu.Unlock()
			l.logf("%s[%d]: %v (%d of %d in a row)", prior.Address, in.Index, failed, n, l.opts.ProbeFailures)
			if n >= l.opts.ProbeFailures {
				mu.Lock()
				ctl.Recreate[in.Token] = fmt.Sprintf("%v, %d times in a row", failed, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// publishedPort is the host port a job publishes its container port on.
func publishedPort(in *state.Instance, container int) int {
	ports, _ := in.Attributes[providers.AttrPorts].(string)
	for _, pair := range strings.Split(ports, ",") {
		h, c, ok := strings.Cut(pair, ":")
		if !ok {
			continue
		}
		if cp, _ := strconv.Atoi(c); cp == container {
			hp, _ := strconv.Atoi(h)
			return hp
		}
	}
	return 0
}

// replicaClient is how a replica's published port is reached: through
// its provider's tunnel where it has one (SSH fleets), else at its IP.
func (l *Loop) replicaClient(in *state.Instance, hostPort int) (*http.Client, string, error) {
	timeout := 10 * time.Second
	if l.opts.ProbeClient != nil {
		return l.opts.ProbeClient, fmt.Sprintf("http://%s", net.JoinHostPort(cmp.Or(attr(in, providers.AttrIP), "127.0.0.1"), strconv.Itoa(hostPort))), nil
	}
	prov, err := l.opts.Providers.For(in.Provider)
	if err != nil {
		return nil, "", err
	}
	if d, ok := prov.(providers.PortDialer); ok {
		id := in.ProviderID
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialPort(ctx, id, hostPort) }}
		return &http.Client{Transport: tr, Timeout: timeout}, "http://replica", nil
	}
	ip := cmp.Or(attr(in, providers.AttrIP), "127.0.0.1")
	return &http.Client{Timeout: timeout}, "http://" + net.JoinHostPort(ip, strconv.Itoa(hostPort)), nil
}

// sendProbe sends one probe: nil when it passed (a 2xx or 3xx answer
// within its timeout, 10s by default).
func sendProbe(ctx context.Context, hc *http.Client, base string, p lang.Probe) error {
	timeout := 10 * time.Second
	if p.Timeout != nil && *p.Timeout > 0 {
		timeout = time.Duration(*p.Timeout) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if p.Body != "" {
		body = bytes.NewBufferString(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(cmp.Or(p.Method, "get")), base+cmp.Or(p.URL, "/"), body)
	if err != nil {
		return err
	}
	for _, h := range p.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
