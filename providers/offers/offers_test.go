package offers

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/google/go-cmp/cmp"
)

// testOffers is a small catalog covering each criterion.
var testOffers = []Offer{
	{Backend: "aws", Region: "us-east-1", InstanceType: "p5", CPUs: 192, Arch: "x86", Memory: 2048 * resources.GB, Disk: 16 * resources.TB,
		GPU: &GPU{"nvidia", "H100", 80 * resources.GB, 8}, PricePerHour: 55},
	{Backend: "aws", Region: "us-east-1", InstanceType: "p5", CPUs: 192, Arch: "x86", Memory: 2048 * resources.GB, Disk: 16 * resources.TB,
		GPU: &GPU{"nvidia", "H100", 80 * resources.GB, 8}, Spot: true, PricePerHour: 30},
	{Backend: "aws", Region: "us-east-1", InstanceType: "p4d", CPUs: 96, Arch: "x86", Memory: 1152 * resources.GB, Disk: 16 * resources.TB,
		GPU: &GPU{"nvidia", "A100", 40 * resources.GB, 8}, PricePerHour: 22},
	{Backend: "gcp", Region: "us-central1", InstanceType: "a2-1g", CPUs: 12, Arch: "x86", Memory: 85 * resources.GB, Disk: 64 * resources.TB,
		GPU: &GPU{"nvidia", "A100", 40 * resources.GB, 1}, PricePerHour: 3.67},
	{Backend: "gcp", Region: "us-central1", InstanceType: "a2-u1g", CPUs: 12, Arch: "x86", Memory: 170 * resources.GB, Disk: 64 * resources.TB,
		GPU: &GPU{"nvidia", "A100", 80 * resources.GB, 1}, PricePerHour: 5.07},
	{Backend: "gcp", Region: "us-west4", InstanceType: "v5litepod-8", CPUs: 224, Arch: "x86", Memory: 384 * resources.GB, Disk: 2 * resources.TB,
		GPU: &GPU{"google", "v5litepod-8", 128 * resources.GB, 1}, PricePerHour: 9.6},
	{Backend: "runpod", Region: "EU-RO-1", InstanceType: "1xMI300X", CPUs: 24, Arch: "x86", Memory: 283 * resources.GB, Disk: 2 * resources.TB,
		GPU: &GPU{"amd", "MI300X", 192 * resources.GB, 1}, PricePerHour: 2.49},
	{Backend: "lambda", Region: "us-east-1", InstanceType: "small-disk", CPUs: 30, Arch: "x86", Memory: 200 * resources.GB, Disk: 50 * resources.GB,
		GPU: &GPU{"nvidia", "A10", 24 * resources.GB, 1}, PricePerHour: 0.75},
	{Backend: "aws", Region: "us-east-1", InstanceType: "c7i.2xlarge", CPUs: 8, Arch: "x86", Memory: 16 * resources.GB, Disk: 16 * resources.TB, PricePerHour: 0.357},
	{Backend: "aws", Region: "us-east-1", InstanceType: "m7g.2xlarge", CPUs: 8, Arch: "arm", Memory: 32 * resources.GB, Disk: 16 * resources.TB, PricePerHour: 0.33},
	{Backend: "gcp", Region: "us-central1", InstanceType: "n2-standard-8", CPUs: 8, Arch: "x86", Memory: 32 * resources.GB, Disk: 64 * resources.TB, PricePerHour: 0.33},
	{Backend: "aws", Region: "us-east-1", InstanceType: "m7i.large", CPUs: 2, Arch: "x86", Memory: 8 * resources.GB, Disk: 16 * resources.TB, PricePerHour: 0.1},
}

// spec builds a spec from the string forms; "" leaves a field out.
func spec(t *testing.T, gpu, cpu, memory, disk string) resources.Spec {
	t.Helper()
	var s resources.Spec
	if gpu != "" {
		g, err := resources.ParseGPU(gpu)
		if err != nil {
			t.Fatal(err)
		}
		s.GPU = &g
	}
	if cpu != "" {
		c, err := resources.ParseCPU(cpu)
		if err != nil {
			t.Fatal(err)
		}
		s.CPU = &c
	}
	if memory != "" {
		m, err := resources.ParseMemoryRange(memory)
		if err != nil {
			t.Fatal(err)
		}
		s.Memory = &m
	}
	if disk != "" {
		d, err := resources.ParseDisk(disk)
		if err != nil {
			t.Fatal(err)
		}
		s.Disk = &d
	}
	return s
}

func names(list []Offer) []string {
	var ns []string
	for _, o := range list {
		n := o.Backend + "/" + o.InstanceType
		if o.Spot {
			n += "/spot"
		}
		ns = append(ns, n)
	}
	return ns
}

func TestMatch(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name                   string
		gpu, cpu, memory, disk string
		filter                 Filter
		want                   []string
	}{
		{name: "defaults: cpu 2.., memory 8GB.., gpu 0.., disk 100GB..", want: []string{
			"aws/m7i.large", "aws/m7g.2xlarge", "gcp/n2-standard-8", "aws/c7i.2xlarge", "runpod/1xMI300X",
			"gcp/a2-1g", "gcp/a2-u1g", "gcp/v5litepod-8", "aws/p4d", "aws/p5/spot", "aws/p5"}},
		{name: "gpu count excludes CPU-only", gpu: "1..", want: []string{
			"runpod/1xMI300X", "gcp/a2-1g", "gcp/a2-u1g", "gcp/v5litepod-8", "aws/p4d", "aws/p5/spot", "aws/p5"}},
		{name: "gpu count exact", gpu: "8", want: []string{"aws/p4d", "aws/p5/spot", "aws/p5"}},
		{name: "gpu count 0 only CPU", gpu: "0", cpu: "8", want: []string{"aws/m7g.2xlarge", "gcp/n2-standard-8", "aws/c7i.2xlarge"}},
		{name: "gpu name and count", gpu: "H100:8", want: []string{"aws/p5/spot", "aws/p5"}},
		{name: "gpu name case-insensitive", gpu: "a100", want: []string{"gcp/a2-1g", "gcp/a2-u1g"}},
		{name: "gpu name alternatives", gpu: "MI300X,A100:1", want: []string{"runpod/1xMI300X", "gcp/a2-1g", "gcp/a2-u1g"}},
		{name: "gpu name with tpu prefix", gpu: "tpu-v5litepod-8", want: []string{"gcp/v5litepod-8"}},
		{name: "gpu vendor", gpu: "amd:1..", want: []string{"runpod/1xMI300X"}},
		{name: "gpu vendor google", gpu: "tpu:1", want: []string{"gcp/v5litepod-8"}},
		{name: "gpu memory per gpu", gpu: "80GB..:1..", want: []string{"runpod/1xMI300X", "gcp/a2-u1g", "gcp/v5litepod-8", "aws/p5/spot", "aws/p5"}},
		{name: "gpu memory range", gpu: "A100:40GB:1..8", want: []string{"gcp/a2-1g", "aws/p4d"}},
		{name: "gpu 0.. with name still matches CPU-only", gpu: "A100:0..1", cpu: "8", want: []string{"aws/m7g.2xlarge", "gcp/n2-standard-8", "aws/c7i.2xlarge"}},
		{name: "cpu count range", cpu: "100..200", want: []string{"aws/p5/spot", "aws/p5"}},
		{name: "cpu arch", cpu: "arm:2..", want: []string{"aws/m7g.2xlarge"}},
		{name: "memory range", memory: "100GB..300GB", want: []string{"runpod/1xMI300X", "gcp/a2-u1g"}},
		{name: "disk above what an offer allows", disk: "4TB..", want: []string{
			"aws/m7i.large", "aws/m7g.2xlarge", "gcp/n2-standard-8", "aws/c7i.2xlarge",
			"gcp/a2-1g", "gcp/a2-u1g", "aws/p4d", "aws/p5/spot", "aws/p5"}},
		{name: "small disk lets small-disk offer in", gpu: "A10", disk: "50GB..", want: []string{"lambda/small-disk"}},
		{name: "default disk keeps small-disk offer out", gpu: "A10", want: nil},
		{name: "filter backend", filter: Filter{Backends: []string{"GCP"}}, want: []string{
			"gcp/n2-standard-8", "gcp/a2-1g", "gcp/a2-u1g", "gcp/v5litepod-8"}},
		{name: "filter region", filter: Filter{Regions: []string{"us-west4", "eu-ro-1"}}, want: []string{"runpod/1xMI300X", "gcp/v5litepod-8"}},
		{name: "filter spot", gpu: "H100:8", filter: Filter{Spot: &yes}, want: []string{"aws/p5/spot"}},
		{name: "filter on-demand", gpu: "H100:8", filter: Filter{Spot: &no}, want: []string{"aws/p5"}},
		{name: "filter max price", gpu: "1..", filter: Filter{MaxPrice: 5.07}, want: []string{"runpod/1xMI300X", "gcp/a2-1g", "gcp/a2-u1g"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(Match(testOffers, spec(t, tt.gpu, tt.cpu, tt.memory, tt.disk), tt.filter))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchDeterministic(t *testing.T) {
	want := Match(testOffers, resources.Spec{}, Filter{})
	for range 20 {
		shuffled := slices.Clone(testOffers)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(want, Match(shuffled, resources.Spec{}, Filter{})); diff != "" {
			t.Fatalf("order depends on input order (-want +got):\n%s", diff)
		}
	}
	// Ties on price: backend, then region, then instance type.
	got := names(Match(testOffers, spec(t, "", "8", "", ""), Filter{}))
	if diff := cmp.Diff([]string{"aws/m7g.2xlarge", "gcp/n2-standard-8", "aws/c7i.2xlarge"}, got); diff != "" {
		t.Errorf("ties (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	p4d, c7i, small := testOffers[2], testOffers[8], testOffers[7]
	tests := []struct {
		name  string
		offer Offer
		spec  resources.Spec
		want  string
	}{
		{"fits", p4d, spec(t, "A100:8", "", "", ""), ""},
		{"gpu name", p4d, spec(t, "H100:8", "", "", ""), "gpu: needs H100:8, offer has A100:40GB:8"},
		{"gpu none", c7i, spec(t, "1..", "", "", ""), "gpu: needs 1.., offer has none"},
		{"cpu", c7i, spec(t, "", "16..", "", ""), "cpu: needs 16.., offer has x86:8"},
		{"arch", c7i, spec(t, "", "arm", "", ""), "cpu: needs arm:2.., offer has x86:8"},
		{"memory", c7i, spec(t, "", "", "64GB..", ""), "memory: needs 64GB.., offer has 16GB"},
		{"disk", small, spec(t, "A10", "", "", ""), "disk: needs 100GB.., offer allows up to 50GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Explain(tt.offer, tt.spec); got != tt.want {
				t.Errorf("Explain = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 60 {
		t.Errorf("catalog has %d offers, want about 80", len(all))
	}
	backends := map[string]bool{}
	for _, o := range all {
		backends[o.Backend] = true
		if o.Availability != Unknown {
			t.Errorf("%s/%s: availability %q, want %q", o.Backend, o.InstanceType, o.Availability, Unknown)
		}
		if o.GPU != nil && o.GPU.Vendor == "nvidia" && o.Disk < 100*resources.GB {
			t.Errorf("%s/%s: disk %s below the default 100GB", o.Backend, o.InstanceType, o.Disk)
		}
	}
	for _, b := range []string{"aws", "gcp", "azure", "lambda", "runpod"} {
		if !backends[b] {
			t.Errorf("no %s offers", b)
		}
	}
	// Every 8xH100 offer of the catalog, cheapest first.
	h100 := Match(all, spec(t, "H100:8", "", "", ""), Filter{})
	if len(h100) < 5 {
		t.Errorf("%d 8xH100 offers, want at least 5", len(h100))
	}
	for _, o := range h100 {
		if o.GPU.Name != "H100" || o.GPU.Count != 8 {
			t.Errorf("H100:8 matched %+v", o)
		}
	}
}

// TestCatalogGPUsAreKnown checks that validation knows every GPU the
// catalog offers: a configuration naming one must not be told its GPU is
// unknown, or refused as a typo.
func TestCatalogGPUsAreKnown(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if o.GPU != nil && !resources.KnownGPU(o.GPU.Name) {
			t.Errorf("%s/%s: GPU %q is not in lang/resources' known names", o.Backend, o.InstanceType, o.GPU.Name)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	header := strings.Join(columns, ",") + "\n"
	good := "aws,us-east-1,g5.xlarge,4,x86,16,100,nvidia,A10G,24,1,false,1.006\n"
	tests := []struct {
		name, csv string
		wantLine  int
		wantCol   string
		wantMsg   string
	}{
		{"empty", "", 1, "", "empty catalog"},
		{"bad header", strings.Replace(header, "cpus", "vcpus", 1), 1, "cpus", `header is "vcpus"`},
		{"bad count", header + good + "aws,us-east-1,g5.2xlarge,8,x86,32,100,nvidia,A10G,24,two,false,1.2\n", 3, "gpu_count", `"two" is not a positive integer`},
		{"bad arch", header + "aws,r,t,8,ppc,32,100,,,,,false,1\n", 2, "arch", "not x86 or arm"},
		{"bad memory", header + "aws,r,t,8,x86,lots,100,,,,,false,1\n", 2, "memory_gb", "not a size in gigabytes"},
		{"partial gpu", header + "aws,r,t,8,x86,32,100,nvidia,,,,false,1\n", 2, "gpu_name", "other gpu columns"},
		{"bad vendor", header + "aws,r,t,8,x86,32,100,nvida,A10G,24,1,false,1\n", 2, "gpu_vendor", "unknown vendor"},
		{"bad spot", header + "aws,r,t,8,x86,32,100,,,,,yes,1\n", 2, "spot", "not true or false"},
		{"negative price", header + "aws,r,t,8,x86,32,100,,,,,false,-1\n", 2, "price_per_hour", "not a price"},
		{"empty backend", header + ",r,t,8,x86,32,100,,,,,false,1\n", 2, "backend", "empty"},
		{"field count", header + good + "aws,r,t\n", 3, "", "want 13 columns"},
		{"duplicate", header + good + "\n" + good, 4, "", "duplicate of line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tt.csv))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load error = %v, want a *LoadError", err)
			}
			if le.Line != tt.wantLine || le.Column != tt.wantCol || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Load error = %q (line %d, column %q), want line %d, column %q, containing %q",
					err, le.Line, le.Column, tt.wantLine, tt.wantCol, tt.wantMsg)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	got, err := Load(strings.NewReader(strings.Join(columns, ",") + "\n" +
		"gcp,us-west4,v5litepod-8,224,x86,384,2048,google,v5litepod-8,128,1,true,4.8\n" +
		"aws,us-east-1,m7g.large,2,arm,8,16384,,,,,false,0.0816\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Offer{
		{Backend: "gcp", Region: "us-west4", InstanceType: "v5litepod-8", CPUs: 224, Arch: "x86", Memory: 384 * resources.GB, Disk: 2 * resources.TB,
			GPU: &GPU{"google", "v5litepod-8", 128 * resources.GB, 1}, Spot: true, PricePerHour: 4.8, Availability: Unknown},
		{Backend: "aws", Region: "us-east-1", InstanceType: "m7g.large", CPUs: 2, Arch: "arm", Memory: 8 * resources.GB, Disk: 16 * resources.TB,
			PricePerHour: 0.0816, Availability: Unknown},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// A divisible offer (a Kubernetes node) fits a spec whose lower bounds
// it reaches, however far it goes past the upper bounds.
func TestMatchDivisible(t *testing.T) {
	node := Offer{Backend: "kubernetes", Region: "k", InstanceType: "h100-0", CPUs: 96, Arch: "x86", Memory: 1024 * resources.GB,
		Disk: 1000 * resources.GB, GPU: &GPU{Vendor: "nvidia", Name: "H100", MemoryMB: 80 * resources.GB, Count: 8}, Divisible: true}
	whole := node
	whole.Divisible = false
	for _, tc := range []struct {
		spec      string
		divisible bool
		whole     bool
	}{
		{"H100:2", true, false},
		{"H100:8", true, false}, // a whole machine of 96 CPUs is not one of exactly 4
		{"H100:16", false, false},
		{"A100:1", false, false},
	} {
		g, err := resources.ParseGPU(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		cpu, err := resources.ParseCPU("4")
		if err != nil {
			t.Fatal(err)
		}
		spec := resources.Spec{GPU: &g, CPU: &cpu}
		if got := len(Match([]Offer{node}, spec, Filter{})) == 1; got != tc.divisible {
			t.Errorf("%s on a divisible node: fits %v, want %v (%s)", tc.spec, got, tc.divisible, Explain(node, spec))
		}
		if got := len(Match([]Offer{whole}, spec, Filter{})) == 1; got != tc.whole {
			t.Errorf("%s on a whole machine: fits %v, want %v", tc.spec, got, tc.whole)
		}
	}
	// A CPU-only run fits a GPU node: it takes none of its GPUs.
	zero, _ := resources.ParseGPU("0")
	if len(Match([]Offer{node}, resources.Spec{GPU: &zero}, Filter{})) != 1 {
		t.Errorf("a run of no GPUs does not fit a divisible GPU node: %s", Explain(node, resources.Spec{GPU: &zero}))
	}
}
