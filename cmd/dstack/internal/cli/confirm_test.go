package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what a user types is written to
// master, and the command reads it from tty, a terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty's terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestAskYesNo(t *testing.T) {
	for _, tc := range []struct {
		typed string
		want  bool
	}{{"y\n", true}, {"yes\n", true}, {"Y\n", true}, {"n\n", false}, {"\n", false}, {"sure\n", false}} {
		master, tty := openPTY(t)
		if _, err := master.WriteString(tc.typed); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		got, err := askYesNo(Streams{Stdin: tty, Stdout: &out}, "stop", "Stop the run task.x?")
		if err != nil {
			t.Fatalf("%q: %v", tc.typed, err)
		}
		if got != tc.want {
			t.Errorf("answer %q: %v, want %v", tc.typed, got, tc.want)
		}
		if out.String() != "Stop the run task.x? [y/n]: " {
			t.Errorf("prompt %q", out.String())
		}
	}
	// Without a terminal it does not guess.
	_, err := askYesNo(Streams{Stdin: strings.NewReader("y\n"), Stdout: &bytes.Buffer{}}, "stop", "Stop?")
	if err == nil || !strings.Contains(err.Error(), "run it with -y") {
		t.Errorf("without a terminal: %v", err)
	}
}

// TestDeleteAsks: a delete answered no on a terminal changes nothing;
// answered yes, it deletes.
func TestDeleteAsks(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("main.dstack.yml", []byte("type: volume\nname: data\nbackend: aws\nregion: us-east-1\nsize: 10GB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"NO_COLOR=1", "DSTACK_SIM_DIR=" + filepath.Join(dir, "sim")}
	runIn := func(stdin *os.File, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(args, Streams{Stdin: stdin, Stdout: &out, Stderr: &errb}, env)
		return code, out.String(), errb.String()
	}
	if code, out, errs := runIn(nil, "apply", "-y"); code != ExitOK {
		t.Fatalf("apply: %d\n%s%s", code, out, errs)
	}
	for _, answer := range []string{"n", "y"} {
		master, tty := openPTY(t)
		if _, err := master.WriteString(answer + "\n"); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runIn(tty, "volume", "delete", "data")
		if code != ExitOK {
			t.Fatalf("answer %s: exit %d\n%s%s", answer, code, out, errs)
		}
		if !strings.Contains(out, "Delete the volume data? [y/n]: ") {
			t.Errorf("answer %s: no question in\n%s", answer, out)
		}
		_, list, _ := runIn(nil, "state", "list")
		switch answer {
		case "n":
			if !strings.Contains(out, "Nothing deleted.") || list != "volume.data\n" {
				t.Errorf("answered no: state %q, output\n%s", list, out)
			}
		case "y":
			if !strings.Contains(out, "Volume data deleted") || list != "" {
				t.Errorf("answered yes: state %q, output\n%s", list, out)
			}
		}
	}
}
