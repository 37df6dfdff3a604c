package local

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/providers"
)

// replicaAgent runs one service replica whose port is a test server's,
// and records whether the replica was removed.
type replicaAgent struct {
	Agent
	port int

	mu      sync.Mutex
	deleted []string
}

func (f *replicaAgent) job(id string) agent.Job {
	return agent.Job{Spec: agent.JobSpec{ID: id}, State: agent.StateRunning, StartedAt: time.Now(),
		Ports: []agent.PortBinding{{Container: 8000, Host: f.port}}}
}

func (f *replicaAgent) Submit(ctx context.Context, spec agent.JobSpec) (agent.Job, bool, error) {
	return f.job(spec.ID), true, nil
}

func (f *replicaAgent) WaitFor(ctx context.Context, id string, done func(agent.Job) bool) (agent.Job, error) {
	return f.job(id), nil
}

func (f *replicaAgent) Get(ctx context.Context, id string) (agent.Job, error) { return f.job(id), nil }

func (f *replicaAgent) Logs(ctx context.Context, id string, since int64, follow bool) (*client.LogStream, error) {
	return nil, errors.New("no log in this test")
}

func (f *replicaAgent) Delete(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id)
	return nil
}

func (f *replicaAgent) removed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

// TestProbeWait: a replica counts once its probes pass; one that does
// not is given up on (at the ready timeout, or when apply stops waiting),
// reported all along, and removed, so that nothing runs that the state
// does not record. Each request is cut at the probe's own timeout.
func TestProbeWait(t *testing.T) {
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		probe        string
		readyTimeout time.Duration
		stopAfter    int // close Stop after this many progress reports (0: never)
		wantErr      string
		wantProgress string
		maxElapsed   time.Duration
	}{
		{
			name:    "passes after ready_after",
			handler: func(w http.ResponseWriter, r *http.Request) {},
			probe:   "{type: http, url: /health, ready_after: 2, interval: 1s}",
			// One report between the two passes.
			wantProgress: "waiting for probe 0 (GET /health): 1 of 2 passes; next in 1s",
			maxElapsed:   3 * time.Second,
		},
		{
			name:         "never passes: given up at the ready timeout",
			handler:      func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			probe:        "{type: http, interval: 1s}",
			readyTimeout: 2 * time.Second,
			wantErr:      "not-ready: probe 0 (GET /): not ready after 2s (last: 503 Service Unavailable); the replica was stopped and removed",
			wantProgress: "waiting for probe 0 (GET /): 0 of 1 passes, last: 503 Service Unavailable; next in 1s, giving up in",
			maxElapsed:   4 * time.Second,
		},
		{
			name:         "never passes: the first interrupt stops the wait",
			handler:      func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) },
			probe:        "{type: http, interval: 1s}",
			readyTimeout: time.Hour,
			stopAfter:    1,
			wantErr:      "not-ready: probe 0 (GET /): stopped waiting for the replica to become ready (interrupted); the replica was stopped and removed",
			wantProgress: "0 of 1 passes, last: 404 Not Found",
			maxElapsed:   3 * time.Second,
		},
		{
			name: "a request that hangs is cut at the probe's timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Minute):
				}
			},
			probe:        "{type: http, timeout: 1s, interval: 1s}",
			readyTimeout: 3 * time.Second,
			wantErr:      "not ready after 3s (last: ",
			wantProgress: "Client.Timeout exceeded",
			maxElapsed:   5 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
			fa := &replicaAgent{}
			fa.port, _ = strconv.Atoi(port)
			p := New(Options{Dir: t.TempDir(), ReadyTimeout: tt.readyTimeout, Agent: func(context.Context) (Agent, error) { return fa, nil }})
			req := request(t, "type: service\nname: svc\nport: 8000\ncommands: [serve]\nprobes:\n  - "+tt.probe+"\n")
			stop := make(chan struct{})
			req.Stop = stop
			var progress []string
			req.Progress = func(msg string) {
				progress = append(progress, msg)
				if len(progress) == tt.stopAfter {
					close(stop)
				}
			}
			start := time.Now()
			o, err := p.Create(context.Background(), req)
			elapsed := time.Since(start)
			if tt.wantErr == "" {
				if err != nil || o.Status != providers.StatusRunning {
					t.Fatalf("Create = %+v, %v; want a running replica", o, err)
				}
				if len(fa.removed()) != 0 {
					t.Errorf("a ready replica was removed")
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v\nwant one holding %q", err, tt.wantErr)
				}
				if providers.CodeOf(err) != providers.NotReady {
					t.Errorf("error code %q, want %q", providers.CodeOf(err), providers.NotReady)
				}
				if got := fa.removed(); len(got) != 1 || got[0] != req.Token {
					t.Errorf("removed %v, want the replica %s", got, req.Token)
				}
			}
			if !strings.Contains(strings.Join(progress, "\n"), tt.wantProgress) {
				t.Errorf("progress:\n%s\nwant a report holding %q", strings.Join(progress, "\n"), tt.wantProgress)
			}
			if elapsed > tt.maxElapsed {
				t.Errorf("took %s, want at most %s", elapsed, tt.maxElapsed)
			}
		})
	}
}
