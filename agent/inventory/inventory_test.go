package inventory

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dstackai/dstack-go/agent"
)

// fakeTools puts copies of the fake vendor tools in testdata/<set> first on
// PATH (only them, with onlyFakes).
func fakeTools(t *testing.T, set string, onlyFakes bool) {
	t.Helper()
	bin := t.TempDir()
	entries, err := os.ReadDir(filepath.Join("testdata", set))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata", set, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, e.Name()), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := bin
	if !onlyFakes {
		// The fakes need cat; nothing else on PATH may shadow them.
		path = bin + string(os.PathListSeparator) + "/usr/bin:/bin"
	}
	t.Setenv("PATH", path)
}

func h100(index int, uuid string) agent.GPU {
	return agent.GPU{Vendor: "nvidia", Index: index, UUID: uuid, Name: "NVIDIA H100 80GB HBM3", MemoryMB: 81559, Driver: "550.54.15"}
}

func TestCollectWithFakeTools(t *testing.T) {
	fakeTools(t, "bin", false)
	root := fakeRoot(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	inv, err := Collect(t.Context(), Options{DataDir: t.TempDir(), DockerSocket: sock, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := []agent.GPU{
		h100(0, "GPU-4f2d6a1e-8b3c-5d7e-9f01-2a3b4c5d6e7f"),
		h100(1, "GPU-7a9c3e5b-1d2f-4a6b-8c0d-e1f2a3b4c5d6"),
		h100(2, "GPU-b3e8f1c2-6a4d-4e9b-a7c5-d2e3f4a5b6c7"),
		h100(3, "GPU-c5d1a7e9-3f8b-4c2a-96e4-f3a4b5c6d7e8"),
		h100(4, "GPU-d8f4b2a6-9e1c-4b7d-85a3-04b5c6d7e8f9"),
		h100(5, "GPU-e2a6c9d3-7b5f-4d1e-a4b2-15c6d7e8f9a0"),
		h100(6, "GPU-f9b3d5e1-2c7a-4f8d-b3c1-26d7e8f9a0b1"),
		h100(7, "GPU-1c7e4f8a-5d3b-4a9e-c2d0-37e8f9a0b1c2"),
		{Vendor: "amd", Index: 0, UUID: "0x18f68e602b8a790f", Name: "AMD Instinct MI300X OAM", MemoryMB: 196288, Driver: "6.8.5"},
		{Vendor: "amd", Index: 1, UUID: "0x2b8f7c41d05e9a63", Name: "AMD Instinct MI300X OAM", MemoryMB: 196288, Driver: "6.8.5"},
	}
	if diff := cmp.Diff(want, inv.GPUs); diff != "" {
		t.Errorf("GPUs (-want +got):\n%s", diff)
	}
	if inv.MemoryMB != 2063834 {
		t.Errorf("memory = %d MB, want 2063834 (MemTotal 2113366272 kB)", inv.MemoryMB)
	}
	if !inv.Docker {
		t.Error("docker socket answers, but Docker = false")
	}
	if inv.CPUs < 1 || inv.Arch == "" || inv.OS != "linux" || inv.Hostname == "" || inv.DiskMB <= 0 || inv.DiskFreeMB <= 0 {
		t.Errorf("host basics: %+v", inv)
	}
	if len(inv.TPUs) != 5 {
		t.Errorf("%d TPUs, want 5", len(inv.TPUs))
	}

	ln.Close()
	if inv, _ := Collect(t.Context(), Options{DockerSocket: sock, Root: root}); inv.Docker {
		t.Error("docker socket is closed, but Docker = true")
	}
}

func TestNvidiaUsage(t *testing.T) {
	fakeTools(t, "bin", false)
	usage, err := NvidiaUsage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 8 {
		t.Fatalf("%d GPUs, want 8", len(usage))
	}
	want := GPUUsage{Index: 1, UUID: "GPU-7a9c3e5b-1d2f-4a6b-8c0d-e1f2a3b4c5d6", UtilizationPercent: 98, MemoryUsedMB: 74201}
	if usage[1] != want {
		t.Errorf("GPU 1 = %+v, want %+v", usage[1], want)
	}
	if usage[7].UtilizationPercent != 0 {
		t.Errorf("[N/A] utilization read as %v, want 0", usage[7].UtilizationPercent)
	}
}

func TestNoVendorTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	inv, err := Collect(t.Context(), Options{Root: fakeRoot(t), DockerSocket: filepath.Join(t.TempDir(), "none.sock")})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 0 || inv.Docker {
		t.Errorf("without tools: GPUs %v, docker %v", inv.GPUs, inv.Docker)
	}
	if usage, err := NvidiaUsage(t.Context()); usage != nil || err != nil {
		t.Errorf("usage without nvidia-smi = %v, %v", usage, err)
	}
}

func TestBrokenNvidiaSMI(t *testing.T) {
	fakeTools(t, "broken", true)
	inv, err := Collect(t.Context(), Options{Root: fakeRoot(t)})
	if err == nil || !strings.Contains(err.Error(), "couldn't communicate with the NVIDIA driver") {
		t.Fatalf("err = %v, want nvidia-smi's message", err)
	}
	if inv.MemoryMB == 0 || inv.CPUs == 0 {
		t.Errorf("the rest of the inventory is missing: %+v", inv)
	}
}

func TestTPUs(t *testing.T) {
	got := TPUs(fakeRoot(t))
	want := []agent.TPU{
		{Device: "/dev/accel0", PCIAddress: "0000:00:04.0", DeviceID: "0x005e", Version: "v4"},
		{Device: "/dev/accel1", PCIAddress: "0000:00:05.0", DeviceID: "0x005e", Version: "v4"},
		{Device: "/dev/accel2", PCIAddress: "0000:00:06.0", DeviceID: "0x005e", Version: "v4"},
		{Device: "/dev/vfio/0", PCIAddress: "0000:00:08.0", DeviceID: "0x0063", Version: "v5e"},
		{Device: "/dev/vfio/1", PCIAddress: "0000:00:09.0", DeviceID: "0x00ff"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TPUs (-want +got):\n%s", diff)
	}
}

func TestParseNvidiaRejectsGarbage(t *testing.T) {
	for _, out := range []string{"0, GPU-x, name\n", "zero, GPU-x, n, 1, d\n"} {
		if _, err := parseNvidiaGPUs([]byte(out)); err == nil {
			t.Errorf("parsed %q", out)
		}
	}
}

// fakeRoot builds a /proc, /sys and /dev the way a TPU VM shows them: three
// v4 chips behind /dev/accel*, a v5e chip and a chip of an unknown
// generation behind VFIO groups, an NVIDIA device in another VFIO group
// and an /dev/accel3 that is not Google's (neither counts).
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, data string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, path string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, target), p); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/meminfo", "MemTotal:       2113366272 kB\nMemFree:        2000000000 kB\n")
	pci := func(addr, vendor, device string) string {
		dir := "sys/devices/pci0000:00/" + addr
		write(dir+"/vendor", vendor+"\n")
		write(dir+"/device", device+"\n")
		return dir
	}
	for i, addr := range []string{"0000:00:04.0", "0000:00:05.0", "0000:00:06.0"} {
		dev := pci(addr, "0x1ae0", "0x005e")
		name := "accel" + string(rune('0'+i))
		write("dev/"+name, "")
		link(dev, "sys/class/accel/"+name+"/device")
	}
	write("dev/accel3", "")
	link(pci("0000:00:07.0", "0x8086", "0x0b25"), "sys/class/accel/accel3/device")
	write("dev/vfio/vfio", "")
	for group, d := range map[string][3]string{
		"0": {"0000:00:08.0", "0x1ae0", "0x0063"},
		"1": {"0000:00:09.0", "0x1ae0", "0x00ff"},
		"2": {"0000:00:0a.0", "0x10de", "0x2330"},
	} {
		write("dev/vfio/"+group, "")
		link(pci(d[0], d[1], d[2]), "sys/kernel/iommu_groups/"+group+"/devices/"+d[0])
	}
	return root
}
