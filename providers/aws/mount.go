package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
)

// VolumesDir is where an instance mounts the EBS volumes attached to it,
// one directory per dstack volume name; a job's mount of the volume is a
// bind mount of that directory (the host runtime: a link to it).
const VolumesDir = "/dstack-volumes"

// attachment is an EBS volume attached to an instance for a job.
type attachment struct {
	ID     string // vol-0123...
	Device string // the device name EC2 was asked for: /dev/sdf
	Name   string // the dstack volume name the job mounts it by
}

// mountPoint is where the instance mounts the volume.
func (a attachment) mountPoint() string { return VolumesDir + "/" + a.Name }

// attachedAttr is the AttrAttached value of attachments.
func attachedAttr(as []attachment) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.ID + ":" + a.Device
	}
	return strings.Join(parts, ",")
}

// mountScript is the shell script that mounts an attached EBS volume on
// its instance at mountPoint, as a Nitro or Xen instance sees it:
//
//   - the block device is, on Nitro, the NVMe namespace whose controller's
//     serial is the volume ID without its dash (udev's
//     /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123... links to
//     it); on Xen, the requested name (/dev/sdf) or its xvd twin
//     (/dev/xvdf). The device is waited for: an attachment takes seconds
//     to appear.
//   - a filesystem (ext4) is made only where blkid finds none, so a
//     volume's data survives every attach after the first.
//   - it is mounted unless the mount point already is one.
//
// It prints the device it mounted.
func mountScript(volumeID, device, mountPoint string, waitSeconds int) string {
	return findDeviceScript("", volumeID, device, waitSeconds) + fmt.Sprintf(`mp=%s
if mountpoint -q "$mp"; then echo "$dev"; exit 0; fi
fstype=$(blkid -o value -s TYPE "$dev" || true)
if [ -z "$fstype" ]; then mkfs.ext4 -q "$dev" >&2; fi
mkdir -p "$mp"
mount "$dev" "$mp"
echo "$dev"
`, shellQuote(mountPoint))
}

// findDeviceScript sets $dev to the volume's block device, waiting up
// to waitSeconds for it to appear (see mountScript); root prefixes the
// paths it looks at (/dev, /sys), "" on an instance.
func findDeviceScript(root, volumeID, device string, waitSeconds int) string {
	serial := strings.ReplaceAll(volumeID, "-", "")
	xvd := strings.Replace(device, "/dev/sd", "/dev/xvd", 1)
	return fmt.Sprintf(`set -e
root=%s; serial=%s; requested=%s; xvd=%s
find_dev() {
	link=$root/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial
	if [ -e "$link" ]; then readlink -f "$link"; return 0; fi
	for s in "$root"/sys/block/nvme*/device/serial; do
		[ -r "$s" ] || continue
		if [ "$(tr -d ' \t\n' <"$s")" = "$serial" ]; then
			d=${s%%/device/serial}; echo "$root/dev/${d##*/}"; return 0
		fi
	done
	for d in "$root$requested" "$root$xvd"; do
		if [ -b "$d" ]; then readlink -f "$d"; return 0; fi
	done
	return 1
}
i=0
until dev=$(find_dev); do
	i=$((i+1))
	if [ "$i" -gt %d ]; then
		echo "no block device for volume $serial (looked for an NVMe device with serial $serial, $requested, $xvd)" >&2
		exit 1
	fi
	sleep 1
done
`, shellQuote(root), shellQuote(serial), shellQuote(device), shellQuote(xvd), waitSeconds)
}

// unmountScript unmounts a volume's mount point if it is one.
func unmountScript(mountPoint string) string {
	return fmt.Sprintf(`mp=%s; if mountpoint -q "$mp"; then umount "$mp"; fi`, shellQuote(mountPoint))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// mount mounts the attachments on instance host, over SSH.
func (p *Provider) mount(ctx context.Context, host string, as []attachment) error {
	for _, a := range as {
		if _, err := p.ssh.RunOnHost(ctx, host, mountScript(a.ID, a.Device, a.mountPoint(), p.opts.DeviceWait)); err != nil {
			return fmt.Errorf("mounting volume %s (%s) at %s: %w", a.Name, a.ID, a.mountPoint(), err)
		}
	}
	return nil
}

// unmount unmounts what a job's attachments mounted on its instance.
func (p *Provider) unmount(ctx context.Context, host string, as []attachment) error {
	for _, a := range as {
		if _, err := p.ssh.RunOnHost(ctx, host, unmountScript(a.mountPoint())); err != nil {
			return fmt.Errorf("unmounting volume %s (%s): %w", a.Name, a.ID, err)
		}
	}
	return nil
}

// withMounts rewrites a run's spec so that each of its volumes attached
// as EBS is mounted from the instance's mount point (an instance_path),
// which the agent bind-mounts into the job's container.
func withMounts(spec json.RawMessage, as []attachment) (json.RawMessage, error) {
	if len(as) == 0 {
		return spec, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(spec, &top); err != nil {
		return nil, fmt.Errorf("reading the run's spec: %w", err)
	}
	var mounts []map[string]json.RawMessage
	if err := json.Unmarshal(top["volumes"], &mounts); err != nil {
		return nil, fmt.Errorf("reading the run's volumes: %w", err)
	}
	byName := map[string]attachment{}
	for _, a := range as {
		byName[a.Name] = a
	}
	for _, m := range mounts {
		b, _ := json.Marshal(m)
		var vm lang.VolumeMount
		if err := json.Unmarshal(b, &vm); err != nil {
			return nil, fmt.Errorf("reading the run's volumes: %w", err)
		}
		for _, n := range vm.Name {
			if a, ok := byName[n]; ok {
				delete(m, "name")
				m["instance_path"], _ = json.Marshal(a.mountPoint())
				break
			}
		}
	}
	var err error
	if top["volumes"], err = json.Marshal(mounts); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// parseAttached reads a job's AttrAttached back (names from the mount
// points recorded beside it).
func parseAttached(attr, names string) []attachment {
	if attr == "" {
		return nil
	}
	ns := strings.Split(names, ",")
	var out []attachment
	for i, item := range strings.Split(attr, ",") {
		id, dev, _ := strings.Cut(item, ":")
		a := attachment{ID: id, Device: dev}
		if i < len(ns) {
			a.Name = ns[i]
		}
		out = append(out, a)
	}
	return out
}

// mountFor mounts the attachments on instance host and returns req with
// its spec mounting them from there.
func (p *Provider) mountFor(ctx context.Context, req providers.CreateRequest, host string, as []attachment) (providers.CreateRequest, error) {
	if len(as) == 0 {
		return req, nil
	}
	if err := p.mount(ctx, host, as); err != nil {
		return req, fmt.Errorf("%s: %w", req.Address, err)
	}
	spec, err := withMounts(req.Spec, as)
	if err != nil {
		return req, fmt.Errorf("%s: %w", req.Address, err)
	}
	req.Spec = spec
	return req, nil
}

// setAttached records the attachments on a job.
func setAttached(attrs map[string]string, as []attachment) {
	if len(as) == 0 {
		return
	}
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = a.Name
	}
	attrs[AttrAttached], attrs[AttrMounted] = attachedAttr(as), strings.Join(names, ",")
}
