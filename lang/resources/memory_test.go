package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want Memory
		str  string
	}{
		{"512MB", 512, "512MB"},
		{"16GB", 16 * GB, "16GB"},
		{"1.5TB", 1536 * GB, "1536GB"},
		{"0.5GB", 512 * MB, "512MB"},
		{"16", 16 * GB, "16GB"},
		{"0.25", 256 * MB, "256MB"},
		{"16 gb", 16 * GB, "16GB"},
		{" 2Tb ", 2 * TB, "2TB"},
		{"1024GB", TB, "1TB"},
		{"1536mb", 1536, "1536MB"},
		{"0", 0, "0GB"},
		{"0MB", 0, "0GB"},
		{"007.50GB", 7680, "7680MB"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMemory(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseMemory(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			if again, err := ParseMemory(got.String()); err != nil || again != got {
				t.Errorf("round trip: %d, %v", again, err)
			}
		})
	}
}

func TestParseMemoryErrors(t *testing.T) {
	for _, tt := range []badCase{
		{"", "", 0, "empty"},
		{"-1GB", "", 0, "must not be negative"},
		{"GB", "", 0, "want a size like"},
		{"1.5.5GB", "", 0, "want a size like"},
		{".5GB", "", 0, "want a size like"},
		{"5.GB", "", 0, "want a size like"},
		{"16XB", "", 0, `unknown unit "XB" (want MB, GB or TB)`},
		{"16 G B", "", 0, `unknown unit "G B"`},
		{"1e3", "", 0, `unknown unit "e3"`},
		{"0.1GB", "", 0, "not a whole number of megabytes"},
		{"0.5MB", "", 0, "not a whole number of megabytes"},
		{"99999999999999TB", "", 0, "too large"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseMemory(tt.in)
			checkError(t, err, "memory size", tt)
		})
	}
}

func TestParseIntRange(t *testing.T) {
	tests := []struct {
		in   string
		want IntRange
		str  string
	}{
		{"2", IntRange{new(2), new(2)}, "2"},
		{"2..", IntRange{Min: new(2)}, "2.."},
		{"..8", IntRange{Max: new(8)}, "..8"},
		{"1..4", IntRange{new(1), new(4)}, "1..4"},
		{"3..3", IntRange{new(3), new(3)}, "3"},
		{"..", IntRange{}, ".."},
		{" 1 .. 4 ", IntRange{new(1), new(4)}, "1..4"},
		{"0..", IntRange{Min: new(0)}, "0.."},
		{"007", IntRange{new(7), new(7)}, "7"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIntRange(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := ParseIntRange(got.String())
			if diff := cmp.Diff(got, again); err != nil || diff != "" {
				t.Errorf("round trip: %v %s", err, diff)
			}
		})
	}
}

func TestParseIntRangeErrors(t *testing.T) {
	for _, tt := range []badCase{
		{"", "", 0, "empty"},
		{"4..2", "", 0, "min 4 is greater than max 2"},
		{"-1", "", 0, "must not be negative"},
		{"..-3", "-3", 2, "must not be negative"},
		{"1..x", "x", 3, "not a non-negative integer"},
		{"1 .. x ", "x", 5, "not a non-negative integer"},
		{"1..2..3", "2..3", 3, "not a non-negative integer"},
		{"a", "", 0, "not a non-negative integer"},
		{"1.5", "", 0, "not a non-negative integer"},
		{"99999999999999999999", "", 0, "too large"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseIntRange(tt.in)
			checkError(t, err, "range", tt)
		})
	}
}

func TestParseMemoryRange(t *testing.T) {
	tests := []struct {
		in   string
		want MemoryRange
		str  string
	}{
		{"24GB..80GB", MemoryRange{new(24 * GB), new(80 * GB)}, "24GB..80GB"},
		{"8GB..", MemoryRange{Min: new(8 * GB)}, "8GB.."},
		{"..80GB", MemoryRange{Max: new(80 * GB)}, "..80GB"},
		{"40GB", MemoryRange{new(40 * GB), new(40 * GB)}, "40GB"},
		{"1..2TB", MemoryRange{new(GB), new(2 * TB)}, "1GB..2TB"},
		{"0.5GB..1.5TB", MemoryRange{new(512 * MB), new(1536 * GB)}, "512MB..1536GB"},
		{"1024MB..1GB", MemoryRange{new(GB), new(GB)}, "1GB"},
		{"..", MemoryRange{}, ".."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMemoryRange(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			again, err := ParseMemoryRange(got.String())
			if diff := cmp.Diff(got, again); err != nil || diff != "" {
				t.Errorf("round trip: %v %s", err, diff)
			}
		})
	}
}

func TestParseMemoryRangeErrors(t *testing.T) {
	for _, tt := range []badCase{
		{"", "", 0, "empty"},
		{"80GB..24GB", "", 0, "min 80GB is greater than max 24GB"},
		{"2TB..1024GB", "", 0, "min 2TB is greater than max 1024GB"},
		{"..8XB", "8XB", 2, `unknown unit "XB"`},
		{"16XB", "", 0, `unknown unit "XB"`},
		{"-1GB..", "-1GB", 0, "must not be negative"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseMemoryRange(tt.in)
			checkError(t, err, "memory range", tt)
		})
	}
}
