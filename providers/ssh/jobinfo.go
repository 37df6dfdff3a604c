package ssh

import (
	"context"
	"io"
	"time"

	"github.com/dstackai/dstack-go/providers"
	"github.com/dstackai/dstack-go/providers/local"
)

var (
	_ providers.MetricsReader = (*Provider)(nil)
	_ providers.TimedLogs     = (*Provider)(nil)
)

// JobMetrics implements providers.MetricsReader: the agent of the job's
// host samples it.
func (p *Provider) JobMetrics(ctx context.Context, id string) (providers.Metrics, error) {
	a, err := p.jobAgent(ctx, id)
	if err != nil {
		return providers.Metrics{}, err
	}
	m, err := a.Metrics(ctx, id)
	if err != nil {
		return providers.Metrics{}, err
	}
	return local.MetricsOf(m), nil
}

// LogsSince implements providers.TimedLogs.
func (p *Provider) LogsSince(ctx context.Context, id string, t time.Time, follow bool) (io.ReadCloser, error) {
	a, err := p.jobAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	return a.LogsSince(ctx, id, t, follow)
}
