package providers

import (
	"context"
	"io"
	"time"
)

// Metrics is a running job's resource use, as its host's agent measures
// it now.
type Metrics struct {
	// CPUPercent is CPU time over wall time, in percent of one CPU (a job
	// busy on four CPUs reports 400).
	CPUPercent float64
	MemoryMB   int64
	GPUs       []GPUMetrics
}

// GPUMetrics is the use of one of a job's GPUs.
type GPUMetrics struct {
	UUID               string
	UtilizationPercent float64
	MemoryUsedMB       int64
}

// MetricsReader is implemented by providers whose jobs' hosts report
// their resource use (`dstack metrics RUN`).
type MetricsReader interface {
	// JobMetrics samples a running job's use; a job that is not running
	// is an error.
	JobMetrics(ctx context.Context, id string) (Metrics, error)
}

// TimedLogs is implemented by providers whose jobs' output can be read
// from a point in time (`dstack logs --since`).
type TimedLogs interface {
	// LogsSince streams a job's output from the first line written at or
	// after t, as JobControl.Logs does from an offset.
	LogsSince(ctx context.Context, id string, t time.Time, follow bool) (io.ReadCloser, error)
}
