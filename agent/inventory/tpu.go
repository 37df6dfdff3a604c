package inventory

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dstackai/dstack-go/agent"
)

// googleVendorID is Google's PCI vendor ID, which TPU chips carry.
const googleVendorID = "0x1ae0"

// tpuVersions maps TPU PCI device IDs to generations, as gVisor's TPU
// support (pkg/abi/tpu) and Google's tpu-info list them.
var tpuVersions = map[string]string{
	"0x0027": "v2/v3",
	"0x0056": "v4lite",
	"0x005e": "v4",
	"0x0062": "v5p",
	"0x0063": "v5e",
	"0x006f": "v6e",
}

// TPUs lists the Google TPU chips of the host. Older TPU VMs (v2 to v4)
// expose each chip as /dev/accelN, whose PCI device is
// /sys/class/accel/accelN/device; newer ones (v5e, v5p, v6e) bind the
// chips to VFIO, where /dev/vfio/N is IOMMU group N and
// /sys/kernel/iommu_groups/N/devices/ holds its PCI devices. Only devices
// with Google's vendor ID count. root prefixes /dev and /sys.
func TPUs(root string) []agent.TPU {
	var tpus []agent.TPU
	accels, _ := filepath.Glob(filepath.Join(root, "dev", "accel*"))
	for _, dev := range accels {
		name := filepath.Base(dev)
		pci := filepath.Join(root, "sys", "class", "accel", name, "device")
		if t, ok := googleDevice(pci); ok {
			t.Device = "/dev/" + name
			tpus = append(tpus, t)
		}
	}
	groups, _ := filepath.Glob(filepath.Join(root, "dev", "vfio", "[0-9]*"))
	for _, dev := range groups {
		group := filepath.Base(dev)
		devices, _ := filepath.Glob(filepath.Join(root, "sys", "kernel", "iommu_groups", group, "devices", "*"))
		for _, pci := range devices {
			if t, ok := googleDevice(pci); ok {
				t.Device = "/dev/vfio/" + group
				tpus = append(tpus, t)
			}
		}
	}
	slices.SortFunc(tpus, func(a, b agent.TPU) int { return strings.Compare(a.PCIAddress, b.PCIAddress) })
	return tpus
}

// googleDevice reads a PCI device's sysfs directory (or a link to it) and
// reports it if Google made it.
func googleDevice(dir string) (agent.TPU, bool) {
	vendor, err := os.ReadFile(filepath.Join(dir, "vendor"))
	if err != nil || strings.TrimSpace(string(vendor)) != googleVendorID {
		return agent.TPU{}, false
	}
	device, _ := os.ReadFile(filepath.Join(dir, "device"))
	id := strings.TrimSpace(string(device))
	addr := filepath.Base(dir)
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		addr = filepath.Base(resolved)
	}
	return agent.TPU{PCIAddress: addr, DeviceID: id, Version: tpuVersions[id]}, true
}
