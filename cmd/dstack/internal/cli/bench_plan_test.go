package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The plan and apply benchmarks below run dstack and terraform side by
// side, as real processes, on the same amount of work: N dstack volumes
// on the simulated cloud (DSTACK_SIM_DIR, zero latency) against N
// terraform_data resources. `make bench` prints the ratios.
//
// Every terraform run is capped at DSTACK_BENCH_TF_CAP (a Go duration;
// by default 25 times dstack's time on the same work in the same run,
// at least 120s): terraform applies 10,000 resources in about 36 minutes
// here, and a run that has not finished at 25 times dstack's time already
// shows dstack at least 25 times faster. A capped run is killed (its whole process group), its time is
// the cap, and it reports the metric "capped" (and "done-of-N", how many
// resources it had created by then), which scripts/benchtable.awk turns
// into "dstack is at least Rx faster". dstack runs have a hard limit of
// their own (dstackLimit); hitting it fails the benchmark.
//
// These are slow: `make bench` runs them once (-benchtime=1x); the plan
// benchmarks time several runs within that one iteration.

func BenchmarkPlan1000(b *testing.B)   { benchPlan(b, 1000) }
func BenchmarkPlan10000(b *testing.B)  { benchPlan(b, 10000) }
func BenchmarkApply1000(b *testing.B)  { benchApply(b, 1000) }
func BenchmarkApply10000(b *testing.B) { benchApply(b, 10000) }

// dstackLimit bounds any one dstack run; a hang fails the benchmark
// instead of running into go test's -timeout.
const dstackLimit = 20 * time.Minute

// benchPlan times `plan` against a state that holds all n resources
// already, refresh included (default flags), so that both say
// "No changes.".
//
// Both sides are set up first; then dstack and terraform run alternately,
// benchRuns times each (5 unless DSTACK_BENCH_RUNS says otherwise), so
// that a burst of load on a shared machine falls on both rather than on
// the few seconds one side runs in. The benchmark reports each side's
// median (dstack-ms, terraform-ms), peak memory (dstack-RSS-MB,
// terraform-RSS-MB), the number of runs and the 1-minute load average;
// scripts/benchtable.awk prints the ratio of the medians. Without
// terraform only dstack is timed, and the table says so.
func benchPlan(b *testing.B, n int) {
	bin := buildDstack(b)
	runs := benchRuns(b, "DSTACK_BENCH_RUNS", 5)

	dir, sim := b.TempDir(), b.TempDir()
	writeVolumes(b, dir, n)
	// Set up: apply once, untimed, then check the plan is empty.
	r := runLimited(dstackCmd(bin, dir, sim, "apply", "-y", "-no-color"), dstackLimit)
	if r.err != nil {
		b.Fatalf("setup: dstack apply -y (%d volumes): %v\n%s", n, r.err, tail(r.out))
	}
	r = runLimited(dstackCmd(bin, dir, sim, "plan", "-no-color", "-detailed-exitcode"), dstackLimit)
	if r.err != nil {
		b.Fatalf("setup: dstack plan -detailed-exitcode after apply is not empty: %v\n%s", r.err, tail(r.out))
	}

	tf, err := exec.LookPath("terraform")
	if err != nil {
		b.Log("terraform is not installed (go install github.com/hashicorp/terraform@v1.5.7): timing dstack alone")
		tf = ""
	}
	capLimit := tfCap(b, 0)
	tfDir := b.TempDir()
	if tf != "" {
		writeTerraformData(b, tfDir, n)
		writeTerraformState(b, tfDir, n)
		terraformInit(b, tf, tfDir)
		// The state written by hand must be what terraform would have
		// written: the plan must be empty (exit 0 of -detailed-exitcode),
		// or the comparison is not fair. Not capped: it is set-up.
		r := runLimited(terraformCmd(tf, tfDir, "plan", "-no-color", "-input=false", "-detailed-exitcode"), dstackLimit)
		if r.err != nil {
			b.Fatalf("setup: terraform plan -detailed-exitcode against the written state is not empty (%v); the written state does not match what terraform writes:\n%s", r.err, tail(r.out))
		}
	}

	var dTimes, tTimes []time.Duration
	var dPeak, tPeak int64
	capped := false
	for b.Loop() {
		for range runs {
			start := time.Now()
			r := runLimited(dstackCmd(bin, dir, sim, "plan", "-no-color"), dstackLimit)
			dTimes = append(dTimes, time.Since(start))
			if r.err != nil {
				b.Fatalf("dstack plan: %v\n%s", r.err, tail(r.out))
			}
			if !bytes.Contains(r.out, []byte("No changes.")) {
				b.Fatalf("dstack plan did not say \"No changes.\":\n%s", tail(r.out))
			}
			dPeak = max(dPeak, r.rssKB)
			if tf == "" {
				continue
			}
			start = time.Now()
			r = runLimited(terraformCmd(tf, tfDir, "plan", "-no-color", "-input=false"), capLimit)
			tTimes = append(tTimes, min(time.Since(start), capLimit))
			tPeak = max(tPeak, r.rssKB)
			switch {
			case r.capped:
				capped = true
				b.Logf("CAPPED: terraform plan of %d resources did not finish within %v; killed", n, capLimit)
			case r.err != nil:
				b.Fatalf("terraform plan: %v\n%s", r.err, tail(r.out))
			case !bytes.Contains(r.out, []byte("No changes.")):
				b.Fatalf("terraform plan did not say \"No changes.\":\n%s", tail(r.out))
			}
		}
	}
	b.ReportMetric(median(dTimes).Seconds()*1000, "dstack-ms")
	b.ReportMetric(float64(dPeak)/1024, "dstack-RSS-MB")
	if len(tTimes) > 0 {
		b.ReportMetric(median(tTimes).Seconds()*1000, "terraform-ms")
		b.ReportMetric(float64(tPeak)/1024, "terraform-RSS-MB")
	}
	if capped {
		b.ReportMetric(1, "capped")
	}
	b.ReportMetric(float64(len(dTimes)), "runs")
	reportLoad(b)
}

// benchApply times `apply` of n new resources into an empty state: a
// fresh directory (and simulated cloud) each iteration, set up untimed.
func benchApply(b *testing.B, n int) {
	bin := buildDstack(b)
	var dstackTime time.Duration
	b.Run("dstack", func(b *testing.B) {
		var peak int64
		var total time.Duration
		runs := 0
		defer func() {
			if runs > 0 {
				dstackTime = total / time.Duration(runs)
			}
		}()
		for b.Loop() {
			b.StopTimer()
			dir, sim := freshDir(b, "cfg"), freshDir(b, "sim")
			writeVolumes(b, dir, n)
			cmd := dstackCmd(bin, dir, sim, "apply", "-y", "-no-color")
			b.StartTimer()
			start := time.Now()
			r := runLimited(cmd, dstackLimit)
			total += time.Since(start)
			runs++
			b.StopTimer()
			if r.err != nil {
				b.Fatalf("dstack apply -y (%d volumes): %v\n%s", n, r.err, tail(r.out))
			}
			if !bytes.Contains(r.out, []byte("Apply complete")) {
				b.Fatalf("dstack apply did not say \"Apply complete\":\n%s", tail(r.out))
			}
			if got := bytes.Count(r.out, []byte("Creation complete")); got != n {
				b.Fatalf("dstack apply created %d volumes, want %d:\n%s", got, n, tail(r.out))
			}
			peak = max(peak, r.rssKB)
			os.RemoveAll(dir)
			os.RemoveAll(sim)
			b.StartTimer()
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	})
	b.Run("terraform", func(b *testing.B) {
		tf := lookTerraform(b)
		capLimit := tfCap(b, dstackTime)
		var peak int64
		capped, done := false, n
		for b.Loop() {
			b.StopTimer()
			dir := freshDir(b, "tf")
			writeTerraformData(b, dir, n)
			terraformInit(b, tf, dir)
			cmd := terraformCmd(tf, dir, "apply", "-auto-approve", "-input=false", "-no-color")
			b.StartTimer()
			r := runLimited(cmd, capLimit)
			b.StopTimer()
			peak = max(peak, r.rssKB)
			created := bytes.Count(r.out, []byte("Creation complete"))
			switch {
			case r.capped:
				capped, done = true, min(done, created)
				b.Logf("CAPPED: terraform apply of %d resources did not finish within %v; killed after %d were created", n, capLimit, created)
			case r.err != nil:
				b.Fatalf("terraform apply: %v\n%s", r.err, tail(r.out))
			case !bytes.Contains(r.out, []byte(fmt.Sprintf("Apply complete! Resources: %d added", n))):
				b.Fatalf("terraform apply did not add %d resources:\n%s", n, tail(r.out))
			}
			os.RemoveAll(dir)
			b.StartTimer()
		}
		if capped {
			b.ReportMetric(1, "capped")
			b.ReportMetric(float64(done), fmt.Sprintf("done-of-%d", n))
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	})
}

// benchRuns is how many runs a benchmark times and takes the median of:
// the environment variable env, else def (at least 1).
func benchRuns(b *testing.B, env string, def int) int {
	b.Helper()
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number of runs", env, s)
	}
	return n
}

// median is the middle of times (the mean of the two middle ones for an
// even number).
func median(times []time.Duration) time.Duration {
	if len(times) == 0 {
		return 0
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	m := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		m = (sorted[len(sorted)/2-1] + m) / 2
	}
	return m
}

// reportMedian reports the median of times as median-ms, how many runs
// it is the median of as runs, and the 1-minute load average as load-avg.
func reportMedian(b *testing.B, times []time.Duration) {
	b.Helper()
	if len(times) == 0 {
		return
	}
	b.ReportMetric(median(times).Seconds()*1000, "median-ms")
	b.ReportMetric(float64(len(times)), "runs")
	reportLoad(b)
}

// reportLoad reports the machine's 1-minute load average as load-avg.
func reportLoad(b *testing.B) {
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			if l, err := strconv.ParseFloat(f[0], 64); err == nil {
				b.ReportMetric(l, "load-avg")
			}
		}
	}
}

// buildDstack builds the dstack binary into a temporary directory, as
// make build does: without cgo.
func buildDstack(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "dstack")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dstackai/dstack-go/cmd/dstack")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building dstack: %v\n%s", err, out)
	}
	return bin
}

// lookTerraform finds terraform or skips the benchmark, saying so.
func lookTerraform(b *testing.B) string {
	b.Helper()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		b.Skip("terraform is not installed: go install github.com/hashicorp/terraform@v1.5.7")
	}
	return tf
}

// tfCap is the limit on any one timed terraform run: DSTACK_BENCH_TF_CAP,
// else 25 times dstack's time on the same work (at least 120s).
func tfCap(b *testing.B, dstack time.Duration) time.Duration {
	b.Helper()
	s := os.Getenv("DSTACK_BENCH_TF_CAP")
	if s == "" {
		return max(120*time.Second, 25*dstack)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("DSTACK_BENCH_TF_CAP=%q: want a positive Go duration such as 120s", s)
	}
	return d
}

// freshDir makes a new empty directory under the benchmark's TempDir.
func freshDir(b *testing.B, prefix string) string {
	b.Helper()
	dir, err := os.MkdirTemp(b.TempDir(), prefix)
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

func dstackCmd(bin, dir, sim string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DSTACK_SIM_DIR="+sim, "NO_COLOR=1")
	return cmd
}

func terraformCmd(tf, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(tf, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	return cmd
}

func terraformInit(b *testing.B, tf, dir string) {
	b.Helper()
	if out, err := terraformCmd(tf, dir, "init", "-no-color", "-input=false").CombinedOutput(); err != nil {
		b.Fatalf("terraform init: %v\n%s", err, out)
	}
}

// procResult is how a process run by runLimited ended.
type procResult struct {
	out    []byte // stdout and stderr
	err    error  // from Wait
	capped bool   // killed for running past the limit
	rssKB  int64  // peak resident memory, KiB
}

// runLimited runs cmd in a process group of its own, and kills the group
// if it runs longer than limit.
func runLimited(cmd *exec.Cmd, limit time.Duration) procResult {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second // a stray child holding the pipes
	if err := cmd.Start(); err != nil {
		return procResult{err: err}
	}
	var capped atomic.Bool
	timer := time.AfterFunc(limit, func() {
		capped.Store(true)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	err := cmd.Wait()
	timer.Stop()
	r := procResult{out: buf.Bytes(), err: err, capped: capped.Load()}
	if cmd.ProcessState != nil {
		r.rssKB = maxRSS(cmd)
	}
	if r.capped && r.err == nil {
		r.err = fmt.Errorf("killed after %v", limit)
	}
	return r
}

// tail is the end of a command's output, for a failure message.
func tail(out []byte) string {
	const keep = 4000
	if len(out) <= keep {
		return string(out)
	}
	return "...\n" + string(out[len(out)-keep:])
}

// writeVolumes writes n volumes, v0..v{n-1}, into dir/main.dstack.hcl.
func writeVolumes(b *testing.B, dir string, n int) {
	b.Helper()
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "volume \"v%d\" {\n  backend = \"aws\"\n  region  = \"us-east-1\"\n  size    = \"100GB\"\n}\n\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.dstack.hcl"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// writeTerraformData writes n terraform_data resources, r0..r{n-1}, into
// dir/main.tf.
func writeTerraformData(b *testing.B, dir string, n int) {
	b.Helper()
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "resource \"terraform_data\" \"r%d\" {\n  input = \"v\"\n}\n\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// The shape of terraform.tfstate as terraform 1.5.7 writes it after
// applying terraform_data resources (field order included). input and
// output are dynamic values: terraform stores them with their type.
type (
	tfState struct {
		Version          int               `json:"version"`
		TerraformVersion string            `json:"terraform_version"`
		Serial           int               `json:"serial"`
		Lineage          string            `json:"lineage"`
		Outputs          map[string]any    `json:"outputs"`
		Resources        []tfStateResource `json:"resources"`
		CheckResults     any               `json:"check_results"`
	}
	tfStateResource struct {
		Mode      string            `json:"mode"`
		Type      string            `json:"type"`
		Name      string            `json:"name"`
		Provider  string            `json:"provider"`
		Instances []tfStateInstance `json:"instances"`
	}
	tfStateInstance struct {
		SchemaVersion       int               `json:"schema_version"`
		Attributes          tfDataAttributes  `json:"attributes"`
		SensitiveAttributes []json.RawMessage `json:"sensitive_attributes"`
	}
	tfDataAttributes struct {
		ID              string         `json:"id"`
		Input           tfDynamicValue `json:"input"`
		Output          tfDynamicValue `json:"output"`
		TriggersReplace any            `json:"triggers_replace"`
	}
	tfDynamicValue struct {
		Value string `json:"value"`
		Type  string `json:"type"`
	}
)

// writeTerraformState writes dir/terraform.tfstate holding the n
// resources of writeTerraformData, as if terraform had applied them.
func writeTerraformState(b *testing.B, dir string, n int) {
	b.Helper()
	st := tfState{
		Version:          4,
		TerraformVersion: "1.5.7",
		Serial:           1,
		Lineage:          uuid(),
		Outputs:          map[string]any{},
		Resources:        make([]tfStateResource, n),
	}
	v := tfDynamicValue{Value: "v", Type: "string"}
	for i := range st.Resources {
		st.Resources[i] = tfStateResource{
			Mode:     "managed",
			Type:     "terraform_data",
			Name:     fmt.Sprintf("r%d", i),
			Provider: `provider["terraform.io/builtin/terraform"]`,
			Instances: []tfStateInstance{{
				Attributes:          tfDataAttributes{ID: uuid(), Input: v, Output: v},
				SensitiveAttributes: []json.RawMessage{},
			}},
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfstate"), append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
}

// uuid is a random UUID in the form terraform uses for lineages and
// terraform_data IDs.
func uuid() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
