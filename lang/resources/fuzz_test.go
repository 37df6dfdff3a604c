package resources

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzRoundTrip checks a parser on any input: it does not panic; an error
// is an *Error whose token lies in the input; a value formats to a string
// that parses back to the same value and formats the same.
func fuzzRoundTrip[T fmt.Stringer](t *testing.T, in string, parse func(string) (T, error)) {
	v, err := parse(in)
	if err != nil {
		checkErrorInvariants(t, in, err)
		return
	}
	s := v.String()
	again, err := parse(s)
	if err != nil {
		t.Fatalf("%q parses to %#v, whose string %q does not parse: %v", in, v, s, err)
	}
	if diff := cmp.Diff(v, again); diff != "" {
		t.Fatalf("%q -> %q reads back different (-first +second):\n%s", in, s, diff)
	}
	if s2 := again.String(); s2 != s {
		t.Fatalf("%q -> %q -> %q", in, s, s2)
	}
}

var fuzzSeeds = []string{
	"", ":", "..", "0", "2", "A100", "A100:2", "A100:40GB:2", "24GB..80GB:2", "H100,H200:8",
	"MI300X:AMD", "tpu:v5p-1024", "0..:nvidia", "nvidia:A100:80GB:1..2", "L4:1", "x86:16..",
	"16..:arm", "100GB..", "1.5TB", "512MB..1TB", "A100:2:4", "A100::2", "A100,", "A100:4..2",
	"A100:amd", " H100 , H200 : 80 GB.. : 1..4 ", "1..2..3", "-1", "99999999999999999999",
	"0.1GB", "v5litepod-8", "\x00", "é",
}

func FuzzParseGPU(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fuzzRoundTrip(t, in, ParseGPU)
		if g, err := ParseGPU(in); err == nil {
			if err := g.Validate(); err != nil {
				t.Fatalf("%q parses to %v, which does not validate: %v", in, g, err)
			}
		}
	})
}

func FuzzParseCPU(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { fuzzRoundTrip(t, in, ParseCPU) })
}

func FuzzParseMemoryRange(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { fuzzRoundTrip(t, in, ParseMemoryRange) })
}

func FuzzParseDisk(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { fuzzRoundTrip(t, in, ParseDisk) })
}
