package host

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/agent"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and parentheses, as a process may choose.
	line := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 50 7 3 20 0 1 0 987654 123456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{state: 'S', pgrp: 4242, ticks: 150 + 50 + 7 + 3, startTime: 987654, rssPages: 2560}
	if got != want {
		t.Errorf("parseStat = %+v, want %+v", got, want)
	}
	if _, err := parseStat([]byte("12 (x) S 1")); err == nil {
		t.Error("short line parsed")
	}
	zombie, _ := parseStat([]byte(strings.Replace(line, ") S ", ") Z ", 1)))
	if zombie.live() {
		t.Error("zombie counted as live")
	}
}

func TestReason(t *testing.T) {
	for code, want := range map[int]string{0: "exit code 0", 3: "exit code 3", 128: "exit code 128", 137: "killed by signal 9", 143: "killed by signal 15", 255: "exit code 255"} {
		if got := reason(code); got != want {
			t.Errorf("reason(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		spec agent.JobSpec
		want []string
	}{
		{"commands", agent.JobSpec{Commands: []string{"a", "b"}}, []string{"/bin/sh", "-c", "set -e\na\nb"}},
		{"bash", agent.JobSpec{Shell: "bash", Commands: []string{"a"}}, []string{"/bin/bash", "-c", "set -e\na"}},
		{"entrypoint", agent.JobSpec{Entrypoint: []string{"/usr/bin/env", "-i"}}, []string{"/usr/bin/env", "-i"}},
		{"entrypoint+commands", agent.JobSpec{Entrypoint: []string{"python3"}, Commands: []string{"train.py"}}, []string{"python3", "train.py"}},
	}
	for _, tt := range tests {
		got, err := command(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := command(agent.JobSpec{}); err == nil {
		t.Error("a spec without commands made a command")
	}
}

func TestPorts(t *testing.T) {
	got, err := ports([]agent.PortBinding{{Container: 8000}, {Container: 9000, Host: 9000}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]agent.PortBinding{{Container: 8000, Host: 8000}, {Container: 9000, Host: 9000}}, got); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if _, err := ports([]agent.PortBinding{{Container: 80, Host: 8080}}); err == nil {
		t.Error("remapped port accepted")
	}
}

// TestReattachedProcess drives a process through a runtime that did not
// start it, as after an agent restart: the watching and the stopping go
// through /proc and the exit file instead of wait(2).
func TestReattachedProcess(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "out.log")
	first, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	spec := agent.JobSpec{ID: "re", Commands: []string{"echo up", "trap 'echo got TERM; exit 5' TERM", "while :; do sleep 0.05; done"}}
	var states []agent.JobState
	h, err := first.Start(ctx, spec, logPath, func(s agent.JobState, _ string) { states = append(states, s) })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]agent.JobState{agent.StateCreating}, states); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	waitFor(t, func() bool { data, _ := os.ReadFile(logPath); return strings.Contains(string(data), "up") })

	second, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h2, ok, err := second.Reattach(ctx, spec, logPath)
	if err != nil || !ok {
		t.Fatalf("reattach: ok %v, %v", ok, err)
	}
	if p := h2.(*proc); p.exited != nil || !p.alive() {
		t.Fatal("re-attached handle should watch a live process through /proc")
	}
	waited := make(chan struct{})
	var code int
	var why string
	go func() {
		defer close(waited)
		code, why, _ = h2.Wait(ctx)
	}()
	if err := h2.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Stop")
	}
	if code != 5 || why != "exit code 5" {
		t.Errorf("re-attached job ended with %d (%s), want 5", code, why)
	}
	if data, _ := os.ReadFile(logPath); !strings.Contains(string(data), "got TERM") {
		t.Errorf("log = %q, want the TERM trap's output", data)
	}
	// The first handle (the parent) sees the same end.
	if c, _, err := h.Wait(ctx); err != nil || c != 5 {
		t.Errorf("parent's Wait = %d, %v", c, err)
	}
	// Once ended, Reattach still finds it (for removal), and Remove frees it.
	h3, ok, err := second.Reattach(ctx, spec, logPath)
	if err != nil || !ok {
		t.Fatalf("reattach an ended job: ok %v, %v", ok, err)
	}
	if c, _, _ := h3.Wait(ctx); c != 5 {
		t.Errorf("ended job's Wait = %d, want 5", c)
	}
	if err := h3.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jobs", "re")); !os.IsNotExist(err) {
		t.Errorf("job dir remains: %v", err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("Remove took the log: %v", err)
	}
	if _, ok, _ := second.Reattach(ctx, spec, logPath); ok {
		t.Error("removed job re-attached")
	}
}

// TestLeftoverProcessesDie: when the job's main process ends, processes it
// left in its group are killed, as in a container.
func TestLeftoverProcessesDie(t *testing.T) {
	dir := t.TempDir()
	rt, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "out.log")
	spec := agent.JobSpec{ID: "bg", Commands: []string{"sleep 600 &", "echo $! > bg.pid"}}
	h, err := rt.Start(t.Context(), spec, logPath, func(agent.JobState, string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if code, _, err := h.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "jobs", "bg", "work", "bg.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(data)) {
		pid = pid*10 + int(c-'0')
	}
	waitFor(t, func() bool {
		s, err := readStat(pid)
		return err != nil || !s.live()
	})
	if err := h.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUserNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		// As root, switching to nobody works.
		a, err := credential("nobody")
		if err != nil || a.cred == nil || a.cred.Uid == 0 || a.home == "" || a.name != "nobody" {
			t.Errorf("credential(nobody) = %+v, %v", a, err)
		}
		return
	}
	if _, err := credential("root"); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("switching to root as a user: %v", err)
	}
}

func TestUserJob(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	dir := t.TempDir()
	rt, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "out.log")
	start := func(spec agent.JobSpec) (agent.Handle, error) {
		return rt.Start(t.Context(), spec, logPath, func(agent.JobState, string) {})
	}
	// The data dir is private: a relative working dir cannot work.
	if _, err := start(agent.JobSpec{ID: "u0", User: "nobody", Commands: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "absolute working_dir") {
		t.Errorf("relative working dir for another user: %v", err)
	}
	shared, err := os.MkdirTemp("", "hostuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.Chmod(shared, 0o755)
	wd := filepath.Join(shared, "work")
	h, err := start(agent.JobSpec{ID: "u", User: "nobody", WorkingDir: wd, Commands: []string{"id -un", "echo $HOME $USER", "touch mine"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := h.Wait(t.Context()); err != nil || code != 0 {
		data, _ := os.ReadFile(logPath)
		t.Fatalf("Wait = %d, %v; log %s", code, err, data)
	}
	data, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || lines[0] != "nobody" || !strings.HasSuffix(lines[1], " nobody") {
		t.Errorf("log = %q, want the job to run as nobody with its HOME and USER", data)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(wd, "mine"), &st); err != nil || st.Uid == 0 {
		t.Errorf("file made by the job: uid %d, %v", st.Uid, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplicasGetTheirOwnPorts: two jobs asking for the same port on one
// host (two replicas of a service) get different host ports; each learns
// its own from $PORT, serves on it, and a re-attaching runtime reports
// the same binding.
func TestReplicasGetTheirOwnPorts(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	start := func(id string) agent.Handle {
		spec := agent.JobSpec{ID: id, Ports: []agent.PortBinding{{Container: 18311}},
			Commands: []string{`echo "port=$PORT dstack=$DSTACK_PORT_18311"`, "echo " + id + " > index.html", "exec busybox httpd -f -p 127.0.0.1:$PORT -h ."}}
		h, err := r.Start(ctx, spec, filepath.Join(dir, id+".log"), func(agent.JobState, string) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Remove(context.Background()) })
		return h
	}
	a, b := start("a"), start("b")
	pa, pb := a.Ports()[0].Host, b.Ports()[0].Host
	if pa != 18311 || pb == 18311 || pb == 0 {
		t.Fatalf("ports: a %d, b %d; want 18311 and another", pa, pb)
	}
	for id, port := range map[string]int{"a": pa, "b": pb} {
		var got string
		for i := 0; i < 100 && !strings.Contains(got, id); i++ {
			time.Sleep(50 * time.Millisecond)
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
				buf, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = string(buf)
			}
		}
		if strings.TrimSpace(got) != id {
			t.Errorf("port %d answers %q, want job %s", port, got, id)
		}
		log, _ := os.ReadFile(filepath.Join(dir, id+".log"))
		if want := fmt.Sprintf("port=%d dstack=%d", port, port); !strings.Contains(string(log), want) {
			t.Errorf("job %s's environment: %q, want %q", id, log, want)
		}
	}
	again, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h, ok, err := again.Reattach(ctx, agent.JobSpec{ID: "b", Ports: []agent.PortBinding{{Container: 18311}}}, filepath.Join(dir, "b.log"))
	if err != nil || !ok || h.Ports()[0].Host != pb {
		t.Fatalf("re-attached b: %v %v %+v, want port %d", ok, err, h, pb)
	}
}
