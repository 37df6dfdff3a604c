package aws

import (
	"context"
	"io"
	"time"

	"github.com/dstackai/dstack-go/providers"
)

var (
	_ providers.MetricsReader = (*Provider)(nil)
	_ providers.TimedLogs     = (*Provider)(nil)
)

// JobMetrics implements providers.MetricsReader: the agent on the job's
// instance samples it, reached over SSH as for its logs.
func (p *Provider) JobMetrics(ctx context.Context, id string) (providers.Metrics, error) {
	return p.ssh.JobMetrics(ctx, id)
}

// LogsSince implements providers.TimedLogs.
func (p *Provider) LogsSince(ctx context.Context, id string, t time.Time, follow bool) (io.ReadCloser, error) {
	return p.ssh.LogsSince(ctx, id, t, follow)
}
