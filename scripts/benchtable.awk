# Turns `go test -bench` output into a table, and prints the ratio where a
# benchmark ran beside its peer (X/dstack and X/terraform), with the peak
# RSS of both. A terraform run killed at its cap (the "capped" metric, see
# cmd/dstack/internal/cli/bench_plan_test.go) is shown as ">time" and its
# ratio as a lower bound. Where a benchmark reports median-ms (the median
# of several runs it timed, see reportMedian in
# cmd/dstack/internal/cli/bench_plan_test.go), that median is its time,
# and the load average it reports (load-avg) is printed with the ratio.
# A benchmark that times dstack and terraform alternately in one run (the
# plan benchmarks) reports dstack-ms and terraform-ms, their medians, with
# dstack-RSS-MB and terraform-RSS-MB; the table shows dstack's, and the
# ratio of the medians is printed under it.
# BenchmarkStartup's median is printed as dstack's start-up time. Lines
# "# load average ..." that make bench writes are printed as they come.
# BenchmarkGatewayVsNginx (gateway/gatewaybench) reports requests per
# second and p50/p99 latency directly to the replica, through nginx and
# through the gateway; the rate ratio and added latency are printed.
BEGIN {
	printf "%-44s %14s %11s %12s %13s %10s\n", "benchmark", "time/op", "alloc/op", "allocs/op", "peak RSS", "MB/s"
}
/^# load average/ { print; next }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	ns = ""; bytes = "-"; allocs = "-"; rss = "-"; rate = "-"; capped = 0; done = ""; med = ""; dms = ""
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ns/op") ns = $i
		if ($(i+1) == "median-ms") med = $i
		if ($(i+1) == "dstack-ms") dms = $i
		if ($(i+1) == "terraform-ms") tms[name] = $i
		if ($(i+1) == "dstack-RSS-MB") { rss = sprintf("%.1f MB", $i); mb[name] = $i }
		if ($(i+1) == "terraform-RSS-MB") tmb[name] = $i
		if ($(i+1) == "runs") runs[name] = $i
		if ($(i+1) == "load-avg") load[name] = $i
		if ($(i+1) == "B/op") bytes = sprintf("%.2f MB", $i / 1048576)
		if ($(i+1) == "allocs/op") allocs = $i
		if ($(i+1) == "MB/s") rate = $i
		if ($(i+1) == "sshd-cpu-s/GB") sshd[name] = $i
		if ($(i+1) == "client-cpu-s/GB") client[name] = $i
		if ($(i+1) == "peak-RSS-MB") { rss = sprintf("%.1f MB", $i); mb[name] = $i }
		if ($(i+1) == "capped" && $i > 0) capped = 1
		if ($(i+1) ~ /^(direct|nginx|gateway)-(rps|p50-ms|p99-ms)$/) { gw[name, $(i+1)] = $i; gwbench[name] = 1 }
		if ($(i+1) == "conc") conc[name] = $i
		if ($(i+1) ~ /^done-of-[0-9]+$/) { done = sprintf("%d of %s", $i, substr($(i+1), 9)) }
	}
	if (ns == "") next
	if (med != "") ns = med * 1e6
	if (dms != "") { ns = dms * 1e6; paired[name] = 1 }
	if (!(name in t)) order[++count] = name
	t[name] = ns; cap[name] = capped; made[name] = done; mbs[name] = rate
	printf "%-44s %14s %11s %12s %13s %10s\n", name, (capped ? ">" : "") sprintf("%.3f ms", ns / 1e6), bytes, allocs, rss, rate
}
function dur(ns) {
	if (ns >= 1e9) return sprintf("%.1f s", ns / 1e9)
	return sprintf("%.1f ms", ns / 1e6)
}
function many(name) {
	return (name in runs) && runs[name] > 1 ? sprintf(" (median of %d)", runs[name]) : ""
}
function loadavg(a, b) {
	if ((a in load) && (b in load)) return sprintf("; load average %.2f, %.2f", load[a], load[b])
	if (a in load) return sprintf("; load average %.2f", load[a])
	return ""
}
function mem(name) {
	return (name in mb) ? sprintf("%.1f MB", mb[name]) : "-"
}
END {
	for (k = 1; k <= count; k++) {
		n = order[k]
		if (n in gwbench) {
			printf "\n%s (%d clients, medians of %d runs, run in turn%s):\n", n, conc[n], runs[n], loadavg(n, "")
			split("direct nginx gateway", who, " ")
			for (w = 1; w <= 3; w++)
				printf "  %-8s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n", who[w], gw[n, who[w] "-rps"], gw[n, who[w] "-p50-ms"], gw[n, who[w] "-p99-ms"]
			printf "  gateway/nginx: %.2fx the rate (goal >= 0.9), p99 %+.2f ms (goal <= +1 ms), p50 %+.2f ms\n", gw[n, "gateway-rps"] / gw[n, "nginx-rps"], gw[n, "gateway-p99-ms"] - gw[n, "nginx-p99-ms"], gw[n, "gateway-p50-ms"] - gw[n, "nginx-p50-ms"]
			continue
		}
		if (n == "BenchmarkStartup")
			printf "\ndstack version start-up: %s%s (budget 10 ms)%s\n", dur(t[n]), many(n), loadavg(n, "")
		if (n in paired) {
			if (!(n in tms)) {
				printf "\n%s: dstack %s%s; no terraform result to compare with (is terraform on PATH?)\n", n, dur(t[n]), many(n)
				continue
			}
			tns = tms[n] * 1e6
			rss = sprintf("; peak RSS: dstack %.1f MB vs terraform %.1f MB", mb[n], tmb[n])
			if (cap[n])
				printf "\n%s: terraform did not finish within %s; dstack is at least %.1fx faster (dstack %s; medians of %d runs each, run alternately)%s%s\n", n, dur(tns), tns / t[n], dur(t[n]), runs[n], rss, loadavg(n, "")
			else
				printf "\n%s: dstack %s, terraform %s (medians of %d runs each, run alternately): dstack is %.1fx faster%s%s\n", n, dur(t[n]), dur(tns), runs[n], tns / t[n], rss, loadavg(n, "")
			continue
		}
		if (n ~ /\/dstack$/) {
			p = n; sub(/\/dstack$/, "/terraform", p)
			q = n; sub(/\/dstack$/, "/docker", q)
			if (!(p in t) && !(q in t))
				printf "\n%s: no terraform result to compare with (skipped: is terraform on PATH?)\n", substr(n, 1, length(n) - 7)
		}
		if (n ~ /\/direct$/) {
			d = n; sub(/\/direct$/, "/ssh", d)
			o = n; sub(/\/direct$/, "/openssh", o)
			if ((d in t) && t[d] > 0) {
				peer = (o in t) && t[o] > 0 ? sprintf("; OpenSSH's ssh -L: %.2f of direct", t[n] / t[o]) : ""
				printf "\n%s: through SSH %s, direct %s: %.2fx direct's time, %.2f of its rate%s\n", substr(n, 1, length(n) - 7), dur(t[d]), dur(t[n]), t[d] / t[n], t[n] / t[d], peer
				if ((d in sshd) && sshd[d] > 0 && mbs[n] != "-") {
					printf "  CPU per GB: the host's sshd %.2f s, dstack attach %.2f s", sshd[d], client[d]
					if (o in sshd)
						printf " (with OpenSSH's ssh: sshd %.2f s, ssh %.2f s)", sshd[o], client[o]
					printf "\n  sshd alone, with a core to itself, forwards at most %.0f MB/s here: %.2f of direct\n", 1000 / sshd[d], 1000 / sshd[d] / mbs[n]
				}
			}
			continue
		}
		if (n ~ /\/docker$/) {
			d = n; sub(/\/docker$/, "/dstack", d)
			if ((d in t) && t[n] > 0)
				printf "\n%s: dstack %s, docker CLI %s: dstack takes %.2fx docker's time\n", substr(d, 1, length(d) - 7), dur(t[d]), dur(t[n]), t[d] / t[n]
			continue
		}
		if (n !~ /\/terraform$/) continue
		d = n; sub(/\/terraform$/, "/dstack", d)
		if (!(d in t) || t[d] <= 0) continue
		x = substr(d, 1, length(d) - 7)
		rss = ""
		if ((d in mb) || (n in mb))
			rss = sprintf("; peak RSS: dstack %s vs terraform %s", mem(d), mem(n))
		if (cap[n]) {
			left = made[n] != "" ? sprintf("; terraform had created %s", made[n]) : ""
			printf "\n%s: terraform did not finish within %s; dstack is at least %.1fx faster (dstack %s%s%s)%s%s\n", x, dur(t[n]), t[n] / t[d], dur(t[d]), many(d), left, rss, loadavg(d, n)
		} else
			printf "\n%s: dstack %s%s, terraform %s%s: dstack is %.1fx faster%s%s\n", x, dur(t[d]), many(d), dur(t[n]), many(n), t[n] / t[d], rss, loadavg(d, n)
	}
}
