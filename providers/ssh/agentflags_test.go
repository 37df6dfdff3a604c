package ssh

import (
	"strings"
	"testing"
)

// TestAgentFlags: a target's agent flags reach the agent's command line,
// under systemd and under the supervise script, and a flag that is not
// one plain word is refused (it would go unquoted into both).
func TestAgentFlags(t *testing.T) {
	flags := []string{"-watch-interruptions", "-imds-endpoint", "http://169.254.169.254"}
	if err := checkAgentFlags(flags); err != nil {
		t.Fatal(err)
	}
	want := "-data-dir /home/u/.dstack/agent -watch-interruptions -imds-endpoint http://169.254.169.254\n"
	if u := unitFile("/home/u", flags); !strings.Contains(u, "ExecStart=/home/u/.dstack/bin/dstack-agent agent -listen 127.0.0.1:0 "+want) {
		t.Errorf("unit file:\n%s", u)
	}
	if u := unitFile("/home/u", nil); !strings.Contains(u, "-data-dir /home/u/.dstack/agent\n") {
		t.Errorf("unit file without flags:\n%s", u)
	}
	if s := superviseScript(flags); !strings.Contains(s, `-data-dir "$D/agent" -watch-interruptions -imds-endpoint http://169.254.169.254 >>`) {
		t.Errorf("supervise script:\n%s", s)
	}
	for _, bad := range []string{"", "-x; rm -rf /", "$(id)", "a b", "-f\n"} {
		if err := checkAgentFlags([]string{bad}); err == nil {
			t.Errorf("flag %q accepted", bad)
		}
	}
}
