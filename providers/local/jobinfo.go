package local

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/client"
	"github.com/dstackai/dstack-go/providers"
)

var (
	_ providers.MetricsReader = (*Provider)(nil)
	_ providers.TimedLogs     = (*Provider)(nil)
)

// metricsAgent is an agent that samples its jobs' resource use (the
// agent's client is one).
type metricsAgent interface {
	Metrics(ctx context.Context, id string) (agent.Metrics, error)
}

// timedLogsAgent is an agent that reads a job's log from a time.
type timedLogsAgent interface {
	LogsSince(ctx context.Context, id string, t time.Time, follow bool) (*client.LogStream, error)
}

// JobMetrics implements providers.MetricsReader.
func (p *Provider) JobMetrics(ctx context.Context, id string) (providers.Metrics, error) {
	a, err := p.getAgent(ctx)
	if err != nil {
		return providers.Metrics{}, err
	}
	ma, ok := a.(metricsAgent)
	if !ok {
		return providers.Metrics{}, fmt.Errorf("the local agent does not report metrics")
	}
	m, err := ma.Metrics(ctx, id)
	if err != nil {
		return providers.Metrics{}, err
	}
	return MetricsOf(m), nil
}

// LogsSince implements providers.TimedLogs.
func (p *Provider) LogsSince(ctx context.Context, id string, t time.Time, follow bool) (io.ReadCloser, error) {
	a, err := p.getAgent(ctx)
	if err != nil {
		return nil, err
	}
	ta, ok := a.(timedLogsAgent)
	if !ok {
		return nil, fmt.Errorf("the local agent cannot read logs from a time")
	}
	return ta.LogsSince(ctx, id, t, follow)
}

// MetricsOf converts the agent's metrics to the providers'.
func MetricsOf(m agent.Metrics) providers.Metrics {
	out := providers.Metrics{CPUPercent: m.CPUPercent, MemoryMB: m.MemoryMB}
	for _, g := range m.GPUs {
		out.GPUs = append(out.GPUs, providers.GPUMetrics{UUID: g.UUID, UtilizationPercent: g.UtilizationPercent, MemoryUsedMB: g.MemoryUsedMB})
	}
	return out
}
