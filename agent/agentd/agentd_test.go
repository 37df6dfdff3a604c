package agentd

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	a, err := parseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.listen != "127.0.0.1:9480" || !strings.HasSuffix(a.dataDir, filepath.Join(".dstack", "agent")) || a.logLimitMB != 64 {
		t.Errorf("defaults = %+v", a)
	}
	for _, bad := range [][]string{{"-log-limit-mb", "0"}, {"extra"}, {"-nope"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}
