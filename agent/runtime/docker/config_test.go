package docker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/agent"
)

func TestContainerConfig(t *testing.T) {
	spec := agent.JobSpec{
		ID:               "job-1",
		RunName:          "hello",
		Image:            "img:1",
		Commands:         []string{"echo a", "echo b"},
		Shell:            "bash",
		Env:              map[string]string{"B": "2", "A": "1"},
		WorkingDir:       "/w",
		User:             "1000:1000",
		Privileged:       true,
		ShmSizeMB:        64,
		Ports:            []agent.PortBinding{{Container: 8080}, {Container: 22, Host: 10022}},
		Volumes:          []agent.Mount{{Name: "data", Path: "/data"}, {HostPath: "/mnt/cache", Path: "/cache", ReadOnly: true}},
		GPUs:             []string{"GPU-aaaa", "GPU-bbbb"},
		StopGraceSeconds: 30,
		Labels:           map[string]string{"x": "y", LabelJobID: "spoofed"},
	}
	cfg, hcfg, err := containerConfig(spec, "127.0.0.1", devices{nvidia: true, infiniband: true})
	if err != nil {
		t.Fatal(err)
	}
	thirty := 30
	wantCfg := &container.Config{
		Image:        "img:1",
		Entrypoint:   []string{"/bin/bash", "-c", "set -e\necho a\necho b"},
		Cmd:          []string{},
		Env:          []string{"A=1", "B=2"},
		WorkingDir:   "/w",
		User:         "1000:1000",
		Labels:       map[string]string{"x": "y", LabelJobID: "job-1", LabelRunName: "hello", LabelManaged: "true"},
		ExposedPorts: nat.PortSet{"8080/tcp": {}, "22/tcp": {}},
		StopTimeout:  &thirty,
	}
	if d := cmp.Diff(wantCfg, cfg); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	wantHost := &container.HostConfig{
		Privileged: true,
		ShmSize:    64 << 20,
		PortBindings: nat.PortMap{
			"8080/tcp": {{HostIP: "127.0.0.1", HostPort: ""}},
			"22/tcp":   {{HostIP: "127.0.0.1", HostPort: "10022"}},
		},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "data", Target: "/data"}},
		Binds:  []string{"/mnt/cache:/cache:ro"},
		Resources: container.Resources{
			Ulimits:        []*container.Ulimit{{Name: "memlock", Soft: -1, Hard: -1}},
			DeviceRequests: []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-aaaa", "GPU-bbbb"}, Capabilities: [][]string{{"gpu"}}}},
			Devices:        []container.DeviceMapping{{PathOnHost: "/dev/infiniband", PathInContainer: "/dev/infiniband", CgroupPermissions: "rwm"}},
		},
	}
	if d := cmp.Diff(wantHost, hcfg); d != "" {
		t.Errorf("host config (-want +got):\n%s", d)
	}
}

func TestContainerConfigCommands(t *testing.T) {
	for _, tc := range []struct {
		name           string
		spec           agent.JobSpec
		entrypoint     []string
		cmd            []string
		keepImageStart bool
	}{
		{"commands with the default shell", agent.JobSpec{Commands: []string{"true"}}, []string{"/bin/sh", "-c", "set -e\ntrue"}, []string{}, false},
		{"absolute shell", agent.JobSpec{Commands: []string{"true"}, Shell: "/usr/bin/zsh"}, []string{"/usr/bin/zsh", "-c", "set -e\ntrue"}, []string{}, false},
		{"entrypoint and commands as its arguments", agent.JobSpec{Entrypoint: []string{"python", "-u"}, Commands: []string{"app.py"}}, []string{"python", "-u"}, []string{"app.py"}, false},
		{"entrypoint alone drops the image's CMD", agent.JobSpec{Entrypoint: []string{"/start"}}, []string{"/start"}, []string{}, false},
		{"neither: the image's own", agent.JobSpec{}, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.ID, tc.spec.Image = "j", "i"
			cfg, _, err := containerConfig(tc.spec, "", devices{})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.entrypoint, []string(cfg.Entrypoint)); d != "" {
				t.Errorf("entrypoint (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.cmd, []string(cfg.Cmd)); d != "" {
				t.Errorf("cmd (-want +got):\n%s", d)
			}
		})
	}
}

func TestContainerConfigGPUs(t *testing.T) {
	amd := agent.JobSpec{ID: "j", Image: "i", GPUs: []string{"0", "1"}}
	_, h, err := containerConfig(amd, "", devices{kfd: true, dri: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []container.DeviceMapping{
		{PathOnHost: "/dev/kfd", PathInContainer: "/dev/kfd", CgroupPermissions: "rwm"},
		{PathOnHost: "/dev/dri", PathInContainer: "/dev/dri", CgroupPermissions: "rwm"},
	}
	if d := cmp.Diff(want, h.Devices); d != "" || h.DeviceRequests != nil {
		t.Errorf("AMD devices (-want +got):\n%s\nrequests: %v", d, h.DeviceRequests)
	}

	// NVIDIA UUIDs, or NVIDIA's driver present, mean NVIDIA even where
	// /dev/kfd exists.
	for _, tc := range []struct {
		gpus []string
		dev  devices
	}{
		{[]string{"GPU-1"}, devices{kfd: true}},
		{[]string{"MIG-1"}, devices{kfd: true}},
		{[]string{"0"}, devices{kfd: true, nvidia: true}},
		{[]string{"0"}, devices{}},
	} {
		_, h, err := containerConfig(agent.JobSpec{ID: "j", Image: "i", GPUs: tc.gpus}, "", tc.dev)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.DeviceRequests) != 1 || h.DeviceRequests[0].Driver != "nvidia" || len(h.Devices) != 0 {
			t.Errorf("%v on %+v: requests %+v, devices %+v; want the nvidia driver", tc.gpus, tc.dev, h.DeviceRequests, h.Devices)
		}
	}

	// No GPUs: no GPU devices, whatever the host has.
	_, h, _ = containerConfig(agent.JobSpec{ID: "j", Image: "i"}, "", devices{kfd: true, dri: true, nvidia: true})
	if h.DeviceRequests != nil || h.Devices != nil {
		t.Errorf("a job without GPUs got %+v %+v", h.DeviceRequests, h.Devices)
	}
}

func TestContainerConfigErrors(t *testing.T) {
	for _, spec := range []agent.JobSpec{
		{Ports: []agent.PortBinding{{Container: 0}}},
		{Ports: []agent.PortBinding{{Container: 80, Host: 70000}}},
		{Volumes: []agent.Mount{{Name: "v", Path: "rel"}}},
		{Volumes: []agent.Mount{{Name: "v", HostPath: "/h", Path: "/p"}}},
		{Volumes: []agent.Mount{{Path: "/p"}}},
		{Volumes: []agent.Mount{{HostPath: "/a:b", Path: "/p"}}},
	} {
		if _, _, err := containerConfig(spec, "", devices{}); err == nil {
			t.Errorf("%+v: no error", spec)
		}
	}
}

func TestProbeDevices(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"dev/kfd", "dev/dri/card0", "dev/infiniband/uverbs0"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := probeDevices(root + "/")
	if want := (devices{kfd: true, dri: true, infiniband: true}); got != want {
		t.Fatalf("probeDevices = %+v, want %+v", got, want)
	}
	if got := probeDevices(t.TempDir() + "/"); got != (devices{}) {
		t.Fatalf("empty root: %+v", got)
	}
}

func TestExitReason(t *testing.T) {
	for _, tc := range []struct {
		code int
		oom  bool
		err  string
		want string
	}{
		{0, false, "", "exit code 0"},
		{3, false, "", "exit code 3"},
		{137, true, "", "OOM killed"},
		{137, false, "", "killed by signal 9"},
		{143, false, "", "killed by signal 15"},
		{255, false, "", "exit code 255"},
		{127, false, `exec: "nope": executable file not found in $PATH`, `exec: "nope": executable file not found in $PATH`},
	} {
		if got := exitReason(tc.code, tc.oom, tc.err); got != tc.want {
			t.Errorf("exitReason(%d, %v, %q) = %q, want %q", tc.code, tc.oom, tc.err, got, tc.want)
		}
	}
}

func TestEncodeAuth(t *testing.T) {
	for img, server := range map[string]string{
		"ubuntu":                      "https://index.docker.io/v1/",
		"docker.io/library/ubuntu:24": "https://index.docker.io/v1/",
		"ghcr.io/org/img:tag":         "ghcr.io",
		"registry.local:5000/a/b@sha256:" + strings.Repeat("0", 64): "registry.local:5000",
	} {
		enc, err := encodeAuth(img, "u", "p@ss")
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		got, err := registry.DecodeAuthConfig(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != "u" || got.Password != "p@ss" || got.ServerAddress != server {
			t.Errorf("%s: %+v, want server %s", img, got, server)
		}
	}
}

func TestReadPull(t *testing.T) {
	stream := `{"status":"Pulling from library/x","id":"latest"}
{"status":"Pulling fs layer","progressDetail":{},"id":"a"}
{"status":"Pulling fs layer","progressDetail":{},"id":"b"}
{"status":"Downloading","progressDetail":{"current":1000000,"total":4000000},"id":"a"}
{"status":"Downloading","progressDetail":{"current":500000,"total":1000000},"id":"b"}
{"status":"Download complete","progressDetail":{},"id":"b"}
{"status":"Pull complete","progressDetail":{},"id":"b"}
{"status":"Pull complete","progressDetail":{},"id":"a"}
{"status":"Digest: sha256:abc"}
{"status":"Status: Downloaded newer image for x:latest"}
`
	var got []string
	if err := readPull(strings.NewReader(stream), func(s string) { got = append(got, s) }, "x"); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1] != "pulling x: 2/2 layers, 5MB/5MB" {
		t.Fatalf("reports %q; want the last to be all done", got)
	}
	if !strings.Contains(strings.Join(got, "|"), "1/2 layers") {
		t.Errorf("reports %q; want one with 1/2 layers", got)
	}

	err := readPull(strings.NewReader(`{"status":"Pulling fs layer","id":"a"}
{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}
`), func(string) {}, "x")
	if err == nil || err.Error() != "manifest unknown" {
		t.Fatalf("err = %v, want manifest unknown", err)
	}
}

func TestLogDirectly(t *testing.T) {
	base := agent.JobSpec{ID: "j", Image: "i", Commands: []string{"echo a"}, Shell: "bash"}
	cfg, hcfg, err := containerConfig(base, "", devices{})
	if err != nil {
		t.Fatal(err)
	}
	if !logDirectly(base, cfg, hcfg, "/data/jobs/j/output.log") {
		t.Fatal("a job with commands does not log directly")
	}
	if d := cmp.Diff(strslice.StrSlice{"/bin/bash", "-c", "exec >>" + LogMountPath + " 2>&1\nset -e\necho a"}, cfg.Entrypoint); d != "" {
		t.Errorf("entrypoint (-want +got):\n%s", d)
	}
	if cfg.Labels[LabelDirectLog] != "true" || cfg.Labels[LabelJobID] != "j" {
		t.Errorf("labels %v", cfg.Labels)
	}
	wantMount := []mount.Mount{{Type: mount.TypeBind, Source: "/data/jobs/j/output.log", Target: LogMountPath}}
	if d := cmp.Diff(wantMount, hcfg.Mounts); d != "" {
		t.Errorf("mounts (-want +got):\n%s", d)
	}

	for name, spec := range map[string]agent.JobSpec{
		"entrypoint":                 {ID: "j", Image: "i", Entrypoint: []string{"/app"}},
		"entrypoint and commands":    {ID: "j", Image: "i", Entrypoint: []string{"/app"}, Commands: []string{"--flag"}},
		"the image's own entrypoint": {ID: "j", Image: "i"},
		"a volume over the log":      {ID: "j", Image: "i", Commands: []string{"true"}, Volumes: []agent.Mount{{Name: "v", Path: "/.dstack-log/"}}},
	} {
		cfg, hcfg, err := containerConfig(spec, "", devices{})
		if err != nil {
			t.Fatal(err)
		}
		before := cfg.Entrypoint
		if logDirectly(spec, cfg, hcfg, "/log") {
			t.Errorf("%s: logs directly", name)
		}
		if !cmp.Equal(before, cfg.Entrypoint) || len(hcfg.Mounts) != len(spec.Volumes) || cfg.Labels[LabelDirectLog] != "" {
			t.Errorf("%s: the config changed: %v %v %v", name, cfg.Entrypoint, hcfg.Mounts, cfg.Labels)
		}
	}
}

func TestPrepareDirectLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "output.log")
	if err := os.WriteFile(p, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareDirectLog(p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o622 || st.Size() != 5 {
		t.Errorf("log mode %v size %d, want -rw--w--w- and its content kept", st.Mode(), st.Size())
	}
	missing := filepath.Join(t.TempDir(), "new.log")
	if err := prepareDirectLog(missing); err != nil {
		t.Fatalf("creating a missing log: %v", err)
	}
	if err := prepareDirectLog(filepath.Join(t.TempDir(), "no", "dir", "log")); err == nil {
		t.Error("no error for a log in a missing directory")
	}
}

func TestEngineRefusals(t *testing.T) {
	bind := errors.New(`Error response from daemon: invalid mount config for type "bind": bind source path does not exist: /var/lib/dstack/jobs/j/output.log`)
	rlimit := errors.New("failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 8: operation not permitted: unknown")
	other := errors.New("Error response from daemon: No such image: nope:latest")
	if !isBindSourceMissing(bind) || isBindSourceMissing(rlimit) || isBindSourceMissing(other) {
		t.Error("isBindSourceMissing misjudges")
	}
	if !isRlimitDenied(rlimit) || isRlimitDenied(bind) || isRlimitDenied(other) {
		t.Error("isRlimitDenied misjudges")
	}
}
