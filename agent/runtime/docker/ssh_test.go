package docker_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackai/dstack-go/agent"
	"github.com/dstackai/dstack-go/agent/runtime/docker"
	"github.com/dstackai/dstack-go/agent/runtime/docker/dockertest"
)

// clientKey makes a key pair: the private key's file and the public key
// as an authorized_keys line.
func clientKey(t *testing.T) (file, authorized string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// TestSSHServer: a job with an SSH server in a busybox container (no sshd
// of its own) is reached by the real OpenSSH client, as the job's user,
// in its working dir, with its environment; its open connection shows in
// the handle's activity.
func TestSSHServer(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("the OpenSSH client is not installed")
	}
	r, img := newRuntime(t, docker.WithHelper(dockertest.StaticDstack(t)))
	key, authorized := clientKey(t)
	for _, user := range []string{"", "nobody"} {
		t.Run("user="+user, func(t *testing.T) {
			spec := newJob(t, img, "sleep 600")
			spec.User = user
			spec.WorkingDir = "/tmp"
			spec.Env = map[string]string{"JOB_VAR": "from-job"}
			spec.SSH = &agent.SSHServer{Port: 10022, AuthorizedKeys: []string{authorized}}
			spec.Ports = []agent.PortBinding{{Container: 10022}}
			ctx := ctxFor(t, 2*time.Minute)
			h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "output.log"), nil)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() { h.Stop(ctx, 0); h.Remove(ctx) })
			port := h.Ports()[0].Host
			ssh := func(args ...string) *exec.Cmd {
				return exec.Command(sshBin, append([]string{"-F", "/dev/null", "-i", key, "-p", strconv.Itoa(port),
					"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
					"-o", "LogLevel=ERROR", "127.0.0.1"}, args...)...)
			}
			out, err := ssh("echo ok; id -un; pwd; echo $JOB_VAR").CombinedOutput()
			wantUser := user
			if wantUser == "" {
				wantUser = "root"
			}
			if want := "ok\n" + wantUser + "\n/tmp\nfrom-job\n"; err != nil || string(out) != want {
				t.Fatalf("ssh: %v, got %q, want %q", err, out, want)
			}
			ar := h.(agent.ActivityReporter)
			waitOpen(t, ar, 0)
			hold := ssh("sleep 30")
			if err := hold.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { hold.Process.Kill(); hold.Wait() }()
			waitOpen(t, ar, 1)
		})
	}
}

// waitOpen waits until the handle reports n open SSH connections.
func waitOpen(t *testing.T, ar agent.ActivityReporter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _, ok := ar.Activity()
		if ok && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job's activity says %d open SSH connections (known: %v), want %d", got, ok, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSSHServerNeedsStaticHelper: without a static helper the job fails
// to start with a message saying what to do, rather than starting a
// container nobody can reach.
func TestSSHServerNeedsStaticHelper(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if docker.IsStatic(exe) {
		t.Skip("the test binary is static")
	}
	r, img := newRuntime(t, docker.WithHelper(exe))
	spec := newJob(t, img, "sleep 600")
	spec.SSH = &agent.SSHServer{Port: 10022}
	_, err = r.Start(ctxFor(t, time.Minute), spec, filepath.Join(t.TempDir(), "output.log"), nil)
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("Start: %v, want an error about a static build", err)
	}
}

// TestDockerInTheJob: with DockerSocket, `docker run` inside the job (the
// host's static docker CLI, the host's Engine) starts a container.
func TestDockerInTheJob(t *testing.T) {
	r, img := newRuntime(t)
	spec := newJob(t, img, "docker run --rm --label ai.dstack.test=sibling "+img+" echo from-a-container-the-job-ran")
	spec.DockerSocket = true
	dockertest.RemoveContainers(t, "ai.dstack.test=sibling")
	code, reason, log := run(t, r, spec)
	if code != 0 || !strings.Contains(log, "from-a-container-the-job-ran\n") {
		t.Fatalf("exit %d (%s), log:\n%s", code, reason, log)
	}
}

// TestPrivileged: a privileged job's container is created privileged and
// may do what needs every capability (mount a file system); an
// unprivileged one may not. An Engine that cannot grant every capability
// (one in a sandbox whose bounding set lacks some) refuses to start a
// privileged container: the job then fails to start with the Engine's
// reason, never silently unprivileged.
func TestPrivileged(t *testing.T) {
	r, img := newRuntime(t)
	for _, privileged := range []bool{true, false} {
		spec := newJob(t, img, "mount -t tmpfs none /mnt && echo mounted")
		spec.Privileged = privileged
		ctx := ctxFor(t, time.Minute)
		h, err := r.Start(ctx, spec, filepath.Join(t.TempDir(), "output.log"), nil)
		if privileged && err != nil && strings.Contains(err.Error(), "unable to apply caps") {
			t.Logf("this Engine cannot start privileged containers: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("privileged=%v: Start: %v", privileged, err)
		}
		if got := inspectJob(t, spec.ID).HostConfig.Privileged; got != privileged {
			t.Errorf("privileged=%v: the container is created with Privileged=%v", privileged, got)
		}
		code, _, err := h.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h.Remove(ctx)
		if got := code == 0; got != privileged {
			t.Errorf("privileged=%v: mount exited %d", privileged, code)
		}
	}
}
