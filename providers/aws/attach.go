package aws

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
)

// AttrAttached is, on a job, the EBS volumes attached to its instance
// for it: "vol-0a...:/dev/sdf,...".
const AttrAttached = "aws_attached"

// AttrMounted is, on a job, the dstack names of the volumes in
// AttrAttached, in its order: each is mounted on the instance at
// VolumesDir/NAME.
const AttrMounted = "aws_mounted"

// mountedVolume is an EBS volume a run mounts, by the name it gives.
type mountedVolume struct {
	providers.Object
	Name string
}

// mountedVolumes returns the EBS volumes a run's spec mounts that this
// provider knows (made or recalled): for each mount, the first of its
// names that is one.
func (p *Provider) mountedVolumes(spec json.RawMessage) ([]mountedVolume, error) {
	var run struct {
		Volumes []lang.VolumeMount `json:"volumes"`
	}
	if err := json.Unmarshal(spec, &run); err != nil {
		return nil, fmt.Errorf("reading the run's volumes: %w", err)
	}
	var out []mountedVolume
	for _, m := range run.Volumes {
		for _, name := range m.Name {
			if v, ok := p.volumeNamed(name); ok {
				out = append(out, mountedVolume{v, name})
				break
			}
		}
	}
	return out, nil
}

// volumeNamed finds the volume of the dstack volume name.
func (p *Provider) volumeNamed(name string) (providers.Object, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.objects {
		if o.Kind == providers.KindVolume && (o.Address == "volume."+name || strings.HasPrefix(o.Address, "volume."+name+"[")) && o.Live() {
			return o, true
		}
	}
	return providers.Object{}, false
}

// volumesZone is the one zone the volumes are in, or "" when there are
// none; volumes in different zones cannot be attached to one instance.
func volumesZone(vols []mountedVolume) (string, error) {
	zone := ""
	for _, v := range vols {
		z := v.Attributes[AttrZone]
		if zone != "" && z != zone {
			return "", providers.Errorf(providers.Unsupported, "the run's volumes are in different zones (%s, %s): an instance attaches volumes of its own zone only", zone, z)
		}
		zone = z
	}
	return zone, nil
}

// attach attaches the volumes to the instance (region, zone, id) at
// /dev/sdf, /dev/sdg, ...
func (p *Provider) attach(ctx context.Context, vols []mountedVolume, region, zone, instance string) ([]attachment, error) {
	var done []attachment
	for i, v := range vols {
		if z := v.Attributes[AttrZone]; z != zone {
			return nil, providers.Errorf(providers.Unsupported, "volume %s (%s) is in %s, the instance %s in %s", v.Address, v.ID, z, instance, zone)
		}
		dev := fmt.Sprintf("/dev/sd%c", 'f'+i)
		found, err := p.cloud.Volumes(ctx, nil, []VolumeRef{{Region: region, ID: v.ID}})
		if err != nil {
			return nil, err
		}
		if len(found) == 1 && found[0].Instance == instance {
			done = append(done, attachment{ID: v.ID, Device: found[0].Device, Name: v.Name})
			continue // attached already (a create again)
		}
		if len(found) == 1 && found[0].Instance != "" {
			return nil, providers.Errorf(providers.NoCapacity, "volume %s (%s) is attached to %s", v.Address, v.ID, found[0].Instance)
		}
		if err := p.cloud.AttachVolume(ctx, region, v.ID, instance, dev); err != nil {
			return nil, err
		}
		done = append(done, attachment{ID: v.ID, Device: dev, Name: v.Name})
	}
	return done, nil
}

// detach unmounts and detaches what a job's AttrAttached records. An
// instance that cannot be reached to unmount is not waited for: EC2
// detaches the volume from it all the same.
func (p *Provider) detach(ctx context.Context, job providers.Object) error {
	list := job.Attributes[AttrAttached]
	if list == "" {
		return nil
	}
	if host := cmp.Or(job.Attributes[AttrMachine], job.Host, job.Attributes[providers.AttrHostID]); host != "" && job.Attributes[AttrMounted] != "" {
		if err := p.unmount(ctx, host, parseAttached(list, job.Attributes[AttrMounted])); err != nil && ctx.Err() != nil {
			return err
		}
	}
	region := job.Attributes[AttrRegion]
	for _, item := range strings.Split(list, ",") {
		id, _, _ := strings.Cut(item, ":")
		if err := p.cloud.DetachVolume(ctx, region, id); err != nil {
			return fmt.Errorf("detaching %s: %w", id, err)
		}
	}
	return nil
}
