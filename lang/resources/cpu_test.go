package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPU(t *testing.T) {
	tests := []struct {
		in   string
		want CPU
		str  string
	}{
		{"4", CPU{Count: IntRange{new(4), new(4)}}, "4"},
		{"4..", CPU{Count: IntRange{Min: new(4)}}, "4.."},
		{"2..8", CPU{Count: IntRange{new(2), new(8)}}, "2..8"},
		{"x86:16..", CPU{Arch: "x86", Count: IntRange{Min: new(16)}}, "x86:16.."},
		{"arm:8", CPU{Arch: "arm", Count: IntRange{new(8), new(8)}}, "arm:8"},
		{"16..:X86", CPU{Arch: "x86", Count: IntRange{Min: new(16)}}, "x86:16.."},
		{"ARM", CPU{Arch: "arm", Count: IntRange{Min: new(2)}}, "arm:2.."},
		{" x86 : 4 ", CPU{Arch: "x86", Count: IntRange{new(4), new(4)}}, "x86:4"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCPU(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := ParseCPU(got.String())
			if diff := cmp.Diff(got, again); err != nil || diff != "" {
				t.Errorf("round trip: %v %s", err, diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestParseCPUErrors(t *testing.T) {
	for _, tt := range []badCase{
		{"", "", 0, "empty"},
		{"x86:arm", "arm", 4, `architecture given twice (first "x86")`},
		{"sparc:4", "sparc", 0, `unknown architecture "sparc" (want x86 or arm)`},
		{"4:8", "8", 2, `count given twice (first "4")`},
		{"x86:", "", 4, "empty token"},
		{"8..4", "8..4", 0, "min 8 is greater than max 4"},
		{"arm:..x", "x", 6, "not a non-negative integer"},
		{"-2", "-2", 0, "must not be negative"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseCPU(tt.in)
			checkError(t, err, "cpu spec", tt)
		})
	}
}

func TestCPUValidate(t *testing.T) {
	if err := (CPU{Arch: "X86", Count: IntRange{Min: new(2)}}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (CPU{Arch: "sparc"}).Validate(); err == nil {
		t.Error("arch sparc: no error")
	}
	if err := (CPU{Count: IntRange{new(3), new(1)}}).Validate(); err == nil {
		t.Error("count 3..1: no error")
	}
}
