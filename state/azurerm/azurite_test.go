package azurerm

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azurite's development account and its published key (the same in every
// Azurite; see its README).
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var azurite struct {
	once     sync.Once
	endpoint string
	err      error
	// stop is the write end of the watchdog's stdin. It is never closed
	// by hand: the test process's exit closes it, however the process
	// ends, and the watchdog then stops Azurite. Kept here so that no
	// finalizer closes it earlier.
	stop *os.File
}

// watchdog stops Azurite ($1, its data folder $2) once its stdin reaches
// EOF: SIGTERM, then SIGKILL after a grace of 3 seconds, since Azurite may
// not exit on SIGTERM while it has connections open.
const watchdog = `read -r _ || true
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 30 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null
rm -rf "$2"`

// azuriteConfig returns the backend config for a container in this test
// process's Azurite, starting Azurite on first use. Only the parent test
// process starts it: the SIGKILL test's child gets this config and
// connects to the parent's Azurite.
func azuriteConfig(t testing.TB, containerName string) map[string]string {
	t.Helper()
	azurite.once.Do(func() { azurite.endpoint, azurite.err = startAzurite() })
	if azurite.err != nil {
		t.Fatal(azurite.err)
	}
	cred, err := azblob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(azurite.endpoint+"/"+containerName, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(t.Context(), nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("creating container %s: %v", containerName, err)
	}
	return map[string]string{
		"storage_account_name": devAccount,
		"container_name":       containerName,
		"access_key":           devKey,
		"endpoint":             azurite.endpoint,
	}
}

// startAzurite starts azurite-blob on a free port and waits until it
// answers. A port taken between choosing and binding makes Azurite exit;
// then it tries another.
func startAzurite() (string, error) {
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		return "", fmt.Errorf("azurite-blob is not installed (the azurerm backend's tests run against Azurite's blob service); install it with .ci/install-azurite.sh: %w", err)
	}
	var last error
	for range 3 {
		endpoint, err := tryAzurite(bin)
		if err == nil {
			return endpoint, nil
		}
		last = err
	}
	return "", last
}

func tryAzurite(bin string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "dstack-azurite-")
	if err != nil {
		return "", err
	}
	logPath := filepath.Join(dir, "azurite.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	// Its output goes to a file, never to the test's: go test waits for
	// every holder of its output pipe to exit.
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--location", filepath.Join(dir, "data"), "--skipApiVersionCheck", "--silent", "--disableTelemetry")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	r, w, err := os.Pipe()
	if err != nil {
		_ = cmd.Process.Kill()
		return "", err
	}
	dog := exec.Command("sh", "-c", watchdog, "sh", strconv.Itoa(cmd.Process.Pid), dir)
	dog.Stdin = r
	if err := dog.Start(); err != nil {
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("starting Azurite's watchdog: %w", err)
	}
	_ = r.Close()
	go func() { _ = dog.Wait() }()

	endpoint := fmt.Sprintf("http://127.0.0.1:%d/%s", port, devAccount)
	cred, err := azblob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		return "", err
	}
	// One try per poll: the SDK's own retries would only slow the polling.
	svc, err := azblob.NewClientWithSharedKeyCredential(endpoint, cred, &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := svc.ServiceClient().GetProperties(ctx, nil)
		cancel()
		if err == nil {
			azurite.stop = w
			return endpoint, nil
		}
		select {
		case werr := <-exited:
			_ = w.Close()
			out, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("azurite-blob exited (%v) before it answered; its output:\n%s", werr, out)
		default:
		}
		if time.Now().After(deadline) {
			_ = w.Close()
			return "", fmt.Errorf("azurite-blob on port %d did not answer within 30s: %w", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
