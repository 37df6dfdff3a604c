package aws

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// findDevice runs findDeviceScript under root and returns what it sets
// $dev to.
func findDevice(t *testing.T, root, volumeID, device string) (string, error) {
	t.Helper()
	out, err := exec.Command("sh", "-c", findDeviceScript(root, volumeID, device, 0)+`echo "$dev"`).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// aBlockDevice is a block device of this machine, for the Xen names to
// link to.
func aBlockDevice(t *testing.T) string {
	t.Helper()
	ents, _ := os.ReadDir("/dev")
	for _, e := range ents {
		if e.Type()&fs.ModeDevice != 0 && e.Type()&fs.ModeCharDevice == 0 {
			return filepath.Join("/dev", e.Name())
		}
	}
	t.Skip("no block device in /dev")
	return ""
}

// TestFindDevice: the volume's device is, on Nitro, the NVMe namespace
// whose controller's serial is the volume ID without its dash (padded
// with spaces as NVMe serials are), not another NVMe disk; on Xen the
// requested /dev/sdf, else its /dev/xvdf twin; and none is an error
// naming what was looked for.
func TestFindDevice(t *testing.T) {
	root := t.TempDir()
	for name, serial := range map[string]string{"nvme0n1": "AWS2C1E4A5B7D9F0E1C3A", "nvme1n1": "vol0a1b2c3d4e5f60718    \n"} {
		dir := filepath.Join(root, "sys", "block", name, "device")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "serial"), []byte(serial), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := findDevice(t, root, "vol-0a1b2c3d4e5f60718", "/dev/sdf"); err != nil || got != root+"/dev/nvme1n1" {
		t.Errorf("Nitro: %q, %v; want %s/dev/nvme1n1", got, err, root)
	}

	xen := t.TempDir()
	blk := aBlockDevice(t)
	if err := os.MkdirAll(filepath.Join(xen, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(blk, filepath.Join(xen, "dev", "xvdg")); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(blk)
	if got, err := findDevice(t, xen, "vol-0123", "/dev/sdg"); err != nil || got != want {
		t.Errorf("Xen /dev/xvdg: %q, %v; want %s", got, err, want)
	}
	if err := os.Symlink(blk, filepath.Join(xen, "dev", "sdg")); err != nil {
		t.Fatal(err)
	}
	if got, err := findDevice(t, xen, "vol-0123", "/dev/sdg"); err != nil || got != want {
		t.Errorf("Xen /dev/sdg: %q, %v; want %s", got, err, want)
	}

	got, err := findDevice(t, t.TempDir(), "vol-0fff", "/dev/sdh")
	if err == nil || !strings.Contains(got, "no block device for volume vol0fff") || !strings.Contains(got, "/dev/xvdh") {
		t.Errorf("no device: %q, %v; want an error naming what was looked for", got, err)
	}
}

// TestWithMounts: a mount of an attached volume becomes its instance
// directory, whichever of the mount's names was attached; other mounts
// and fields are kept.
func TestWithMounts(t *testing.T) {
	spec := []byte(`{"type":"task","name":"t","commands":["true"],"volumes":[{"name":["gone","data"],"path":"/data"},` +
		`{"instance_path":"/mnt/cache","path":"/cache"},{"name":"other","path":"/other"}]}`)
	out, err := withMounts(spec, []attachment{{ID: "vol-1", Device: "/dev/sdf", Name: "data"}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Commands []string         `json:"commands"`
		Volumes  []map[string]any `json:"volumes"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Volumes) != 3 || got.Volumes[0]["instance_path"] != VolumesDir+"/data" || got.Volumes[0]["name"] != nil ||
		got.Volumes[0]["path"] != "/data" || got.Volumes[1]["instance_path"] != "/mnt/cache" || got.Volumes[2]["name"] == nil ||
		len(got.Commands) != 1 {
		t.Errorf("rewritten spec %s", out)
	}
}
