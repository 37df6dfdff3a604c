// Package gatewaybench compares the gateway's data plane with Debian's
// nginx proxying the same replica (make bench). It needs nginx
// (.ci/install-nginx.sh) and builds the replica and dstack-gateway.
package gatewaybench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackai/dstack-go/gateway"
	"github.com/dstackai/dstack-go/gateway/gatewayproc"
	"github.com/dstackai/dstack-go/gateway/gatewaytest"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(b *testing.B, url string) {
	b.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	b.Fatalf("%s does not answer", url)
}

func start(b *testing.B, name string, args ...string) int {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// cpuTicks returns the CPU time (user and system, in clock ticks) that
// the processes pids and their children have used so far.
func cpuTicks(pids ...int) int64 {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	entries, _ := os.ReadDir("/proc")
	var total int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name (which may hold spaces).
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if !want[pid] && !want[ppid] {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += utime + stime
	}
	return total
}

const nginxConf = `worker_processes auto;
error_log %[1]s/error.log;
pid %[1]s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream replica { server %[2]s; keepalive 256; }
  server {
    listen %[3]s;
    location /proxy/services/main/web/ {
      proxy_pass http://replica/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      # The headers the gateway adds too.
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`

// result is one load run: requests per second and latency percentiles.
type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
	// cpuPerReq is the CPU time the proxy's processes spent per
	// request (none for direct): a figure the machine's other load
	// moves far less than the rates.
	cpuPerReq time.Duration
	requests  int
}

// load sends GETs to url from conc workers for d, each on a kept-alive
// connection, and measures every request.
func load(url string, conc int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat := make([][]time.Duration, conc)
	errs := make([]int, conc)
	var wg sync.WaitGroup
	began := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := c.Get(url)
				if err != nil {
					if ctx.Err() == nil {
						errs[w]++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs[w]++
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	var all []time.Duration
	var r result
	for w := range conc {
		all = append(all, lat[w]...)
		r.errors += errs[w]
	}
	slices.Sort(all)
	if len(all) == 0 {
		return r
	}
	r.requests = len(all)
	r.rps = float64(len(all)) / elapsed.Seconds()
	r.p50 = all[len(all)*50/100]
	r.p99 = all[min(len(all)-1, len(all)*99/100)]
	return r
}

func medianOf(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkGatewayVsNginx sends the same load (DSTACK_BENCH_GW_CONC
// workers, 32 by default, for DSTACK_BENCH_GW_SECONDS, 3, each) to one
// replica directly, through nginx and through the gateway, in turn,
// DSTACK_BENCH_RUNS times (5), and reports the medians, the proxies' CPU
// time per request and the median of the runs' gateway/nginx ratios.
// DSTACK_BENCH_GW_BASELINE names another dstack-gateway binary (an older
// build) measured alongside as "baseline". DSTACK_BENCH_GW_ENV adds variables (A=1 B=2) to the gateway's
// environment, to try settings such as GOMAXPROCS or GOGC.
func BenchmarkGatewayVsNginx(b *testing.B) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			b.Skip("nginx is not installed: run .ci/install-nginx.sh")
		}
		nginx = "/usr/sbin/nginx"
	}
	runs := envInt("DSTACK_BENCH_RUNS", 5)
	conc := envInt("DSTACK_BENCH_GW_CONC", 32)
	secs := envInt("DSTACK_BENCH_GW_SECONDS", 3)
	dir := b.TempDir()
	replica := gatewaytest.Build(b, "gateway/gatewaytest/replica", dir, "replica")
	gwBin := gatewaytest.Build(b, "cmd/dstack-gateway", dir, "dstack-gateway")

	replicaAddr := freeAddr(b)
	_, port, _ := net.SplitHostPort(replicaAddr)
	start(b, replica, port)
	waitHTTP(b, "http://"+replicaAddr+"/")

	nginxAddr := freeAddr(b)
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		b.Fatal(err)
	}
	conf := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, ndir, replicaAddr, nginxAddr), 0o644); err != nil {
		b.Fatal(err)
	}
	nginxPid := start(b, nginx, "-c", conf, "-p", ndir, "-g", "daemon off;")

	gw, gwPid := startGateway(b, filepath.Join(dir, "gateway"), gwBin, replicaAddr)
	targets := []struct {
		name, url string
		pids      []int
	}{
		{"direct", "http://" + replicaAddr + "/", nil},
		{"nginx", "http://" + nginxAddr + "/proxy/services/main/web/", []int{nginxPid}},
		{"gateway", gw.URL + "/proxy/services/main/web/", []int{gwPid}},
	}
	if base := os.Getenv("DSTACK_BENCH_GW_BASELINE"); base != "" {
		bgw, bpid := startGateway(b, filepath.Join(dir, "baseline"), base, replicaAddr)
		targets = append(targets, struct {
			name, url string
			pids      []int
		}{"baseline", bgw.URL + "/proxy/services/main/web/", []int{bpid}})
	}
	ticksPerSec := envInt("DSTACK_BENCH_CLK_TCK", 100)
	for _, t := range targets {
		waitHTTP(b, t.url)
		load(t.url, conc, 500*time.Millisecond) // warm up connections
	}
	res := map[string][]result{}
	b.ResetTimer()
	for i := range runs {
		// Alternate the order so that neither side always runs first.
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			before := cpuTicks(t.pids...)
			r := load(t.url, conc, time.Duration(secs)*time.Second)
			if t.pids != nil && r.requests > 0 {
				ticks := cpuTicks(t.pids...) - before
				r.cpuPerReq = time.Duration(ticks) * time.Second / time.Duration(ticksPerSec) / time.Duration(r.requests)
			}
			if r.errors > 0 {
				b.Fatalf("%s: %d requests failed", t.name, r.errors)
			}
			res[t.name] = append(res[t.name], r)
		}
	}
	b.StopTimer()
	for _, t := range targets {
		rs := res[t.name]
		b.ReportMetric(medianOf(rs, func(r result) float64 { return r.rps }), t.name+"-rps")
		b.ReportMetric(medianOf(rs, func(r result) float64 { return float64(r.p50) / 1e6 }), t.name+"-p50-ms")
		b.ReportMetric(medianOf(rs, func(r result) float64 { return float64(r.p99) / 1e6 }), t.name+"-p99-ms")
		if t.pids != nil {
			b.ReportMetric(medianOf(rs, func(r result) float64 { return float64(r.cpuPerReq) / 1e3 }), t.name+"-cpu-us/req")
		}
	}
	// The ratio of each run's pair, measured a few seconds apart, moves
	// less with the machine's other load than the two medians do.
	ratios := make([]result, runs)
	for i := range runs {
		ratios[i] = result{rps: res["gateway"][i].rps / res["nginx"][i].rps, p99: res["gateway"][i].p99 - res["nginx"][i].p99}
	}
	b.ReportMetric(medianOf(ratios, func(r result) float64 { return r.rps }), "gateway/nginx-rps")
	b.ReportMetric(medianOf(ratios, func(r result) float64 { return float64(r.p99) / 1e6 }), "gateway-nginx-p99-ms")
	if res["baseline"] != nil {
		for i := range runs {
			ratios[i] = result{rps: res["baseline"][i].rps / res["nginx"][i].rps, p99: res["baseline"][i].p99 - res["nginx"][i].p99}
		}
		b.ReportMetric(medianOf(ratios, func(r result) float64 { return r.rps }), "baseline/nginx-rps")
		b.ReportMetric(medianOf(ratios, func(r result) float64 { return float64(r.p99) / 1e6 }), "baseline-nginx-p99-ms")
	}
	b.ReportMetric(float64(runs), "runs")
	b.ReportMetric(float64(conc), "conc")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		var l float64
		fmt.Sscan(string(la), &l)
		b.ReportMetric(l, "load-avg")
	}
}

// startGateway starts the gateway program prog in dir, routing the
// service web to the replica, and returns its client and process id.
func startGateway(b *testing.B, dir, prog, replicaAddr string) (*gatewayproc.Client, int) {
	b.Helper()
	env := os.Environ()
	if extra := os.Getenv("DSTACK_BENCH_GW_ENV"); extra != "" {
		env = append(env, strings.Fields(extra)...)
	}
	gw, err := gatewayproc.Start(context.Background(), dir, prog, []string{"-listen", freeAddr(b)}, env)
	if err != nil {
		b.Fatal(err)
	}
	pid := 0
	if raw, err := os.ReadFile(filepath.Join(dir, "gateway.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	if pid == 0 {
		b.Fatal("the gateway wrote no gateway.pid")
	}
	b.Cleanup(func() {
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill()
		}
	})
	if err := gw.Push(context.Background(), gateway.Table{Services: []gateway.Service{{Name: "web", Replicas: []string{"http://" + replicaAddr}}}}); err != nil {
		b.Fatal(err)
	}
	return gw, pid
}
