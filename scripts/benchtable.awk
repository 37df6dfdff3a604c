# Turns `go test -bench` output into a table, and prints the ratio where a
# benchmark ran beside its peer (X/dstack and X/terraform).
BEGIN {
	printf "%-44s %12s %11s %12s %13s\n", "benchmark", "time/op", "alloc/op", "allocs/op", "peak RSS"
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	ns = ""; bytes = "-"; allocs = "-"; rss = "-"
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ns/op") ns = $i
		if ($(i+1) == "B/op") bytes = sprintf("%.2f MB", $i / 1048576)
		if ($(i+1) == "allocs/op") allocs = $i
		if ($(i+1) == "peak-RSS-MB") rss = sprintf("%.1f MB", $i)
	}
	t[name] = ns
	printf "%-44s %9.3f ms %11s %12s %13s\n", name, ns / 1e6, bytes, allocs, rss
}
END {
	for (n in t) {
		if (n !~ /\/terraform$/) continue
		d = n; sub(/\/terraform$/, "/dstack", d)
		if (d in t && t[d] > 0)
			printf "\n%s: dstack %.1f ms, terraform %.1f ms: dstack is %.1fx faster\n", substr(d, 1, length(d) - 7), t[d] / 1e6, t[n] / 1e6, t[n] / t[d]
	}
}
