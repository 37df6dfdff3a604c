package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestLogScrubber: secret values in a job's output are replaced however
// the output is cut into writes, overlapping and repeated values too.
func TestLogScrubber(t *testing.T) {
	secrets := []string{"hf_SeCrEt_42", "SeCrEt", "abcabd"}
	in := "token=hf_SeCrEt_42\nother SeCrEt and hf_SeCr\nabcabcabd end hf_SeCrEt_42"
	want := "token=***\nother *** and hf_SeCr\nabc*** end ***"
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		ls := newLogScrubber(&out, secrets)
		for i := 0; i < len(in); i += size {
			if _, err := ls.Write([]byte(in[i:min(i+size, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := ls.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("writes of %d bytes: got %q, want %q", size, out.String(), want)
		}
	}
	// Output that cannot start a value is written at once.
	var out bytes.Buffer
	ls := newLogScrubber(&out, secrets)
	ls.Write([]byte("step 1 done\n"))
	if out.String() != "step 1 done\n" {
		t.Fatalf("held back %q", strings.TrimPrefix("step 1 done\n", out.String()))
	}
}
