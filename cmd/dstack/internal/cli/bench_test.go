package cli

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/lang/load/loadtest"
)

// BenchmarkValidate1000 measures the whole command, process start
// included, against its peer on the same work: `dstack validate` of 1,000
// resources in 100 files (half YAML, half HCL) and `terraform validate` of
// 1,000 terraform_data resources in 100 files. `make bench` prints the
// ratio. The terraform case is skipped, saying so, where terraform is not
// installed (.ci/run does not need it for this).
func BenchmarkValidate1000(b *testing.B) {
	bin := buildDstack(b)
	dir := b.TempDir()
	loadtest.WriteLargeConfig(b, dir, 100, 10)
	b.Run("dstack", func(b *testing.B) {
		var peak int64
		for b.Loop() {
			cmd := exec.Command(bin, "validate", "-no-color", dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("dstack validate: %v\n%s", err, out)
			}
			peak = max(peak, maxRSS(cmd))
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	})
	b.Run("terraform", func(b *testing.B) {
		tf, err := exec.LookPath("terraform")
		if err != nil {
			b.Skip("terraform is not installed: go install github.com/hashicorp/terraform@v1.5.7")
		}
		tfDir := b.TempDir()
		loadtest.WriteTerraformConfig(b, tfDir, 100, 10)
		cmd := exec.Command(tf, "init", "-no-color", "-input=false")
		cmd.Dir = tfDir
		cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("terraform init: %v\n%s", err, out)
		}
		var peak int64
		for b.Loop() {
			cmd := exec.Command(tf, "validate", "-no-color")
			cmd.Dir = tfDir
			cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("terraform validate: %v\n%s", err, out)
			}
			peak = max(peak, maxRSS(cmd))
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	})
}

// BenchmarkStartup times `dstack version`, which does nothing but start:
// the Go runtime and the initialisation of every package linked into
// dstack. `make bench` prints the median of DSTACK_BENCH_STARTUP_RUNS
// runs (21 unless set); the budget is 10 ms.
func BenchmarkStartup(b *testing.B) {
	bin := buildDstack(b)
	runs := benchRuns(b, "DSTACK_BENCH_STARTUP_RUNS", 21)
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil { // warm the page cache
		b.Fatalf("dstack version: %v\n%s", err, out)
	}
	var times []time.Duration
	for b.Loop() {
		for range runs {
			cmd := exec.Command(bin, "version")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			times = append(times, time.Since(start))
			if err != nil || !strings.HasPrefix(string(out), "dstack ") {
				b.Fatalf("dstack version: %v\n%s", err, out)
			}
		}
	}
	reportMedian(b, times)
}

// maxRSS returns the peak resident memory of a finished command, in KiB.
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
