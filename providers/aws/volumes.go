package aws

import (
	"cmp"
	"context"
	"fmt"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers"
)

// Volume attributes.
const (
	AttrVolumeSize = "size_gb"
)

func (p *Provider) createVolume(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	spec, err := lang.DecodeSpec(req.Spec)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	v, ok := spec.(*lang.Volume)
	if !ok {
		return providers.Object{}, fmt.Errorf("%s: a volume of a %s", req.Address, spec.Kind())
	}
	if v.Region == "" {
		return providers.Object{}, fmt.Errorf("%s: an aws volume needs a region", req.Address)
	}
	if v.VolumeID != "" {
		found, err := p.cloud.Volumes(ctx, nil, []VolumeRef{{Region: v.Region, ID: v.VolumeID}})
		if providers.CodeOf(err) == providers.NotFound || err == nil && len(found) == 0 {
			return providers.Object{}, providers.Errorf(providers.NotFound, "%s: volume %s is not in %s", req.Address, v.VolumeID, v.Region)
		}
		if err != nil {
			return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
		}
		o := volumeObject(req.Token, req.Address, found[0])
		o.Attributes[providers.AttrRegistered] = "true"
		p.remember(o)
		return o, nil
	}
	if v.Size == nil || *v.Size <= 0 {
		return providers.Object{}, fmt.Errorf("%s: a new aws volume needs a size", req.Address)
	}
	zone := cmp.Or(v.AvailabilityZone, v.Region+"a")
	made, err := p.cloud.CreateVolume(ctx, VolumeRequest{Token: req.Token, Address: req.Address, Region: v.Region, Zone: zone,
		SizeGB: int((*v.Size + 1023) / 1024), Tags: v.Tags})
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	o := volumeObject(req.Token, req.Address, made)
	p.remember(o)
	return o, nil
}

func volumeObject(token, address string, v Volume) providers.Object {
	o := providers.Object{Kind: providers.KindVolume, ID: v.ID, Token: token, Address: address, Status: providers.StatusRunning,
		Attributes: map[string]string{AttrRegion: v.Region, AttrZone: v.Zone, AttrVolumeSize: fmt.Sprint(v.SizeGB)}}
	switch v.State {
	case "creating":
		o.Status = providers.StatusProvisioning
	case "deleting", "deleted":
		o.Status, o.Reason = providers.StatusTerminated, "deleted"
	case "error":
		o.Status, o.Reason = providers.StatusFailed, "EBS reports an error"
	}
	if v.Instance != "" {
		o.Host = v.Instance
	}
	return o
}

// describeVolumes adds the volumes of tokens (made by dstack, found by
// tag) and of recalled tokens (registered ones too, found by ID) to out.
func (p *Provider) describeVolumes(ctx context.Context, tokens, recalled []string, out map[string]providers.Object) error {
	var refs []VolumeRef
	byID := map[string]providers.Object{}
	for _, tok := range recalled {
		o, _ := p.recalled(tok)
		if o.Attributes[providers.AttrRegistered] == "true" {
			refs = append(refs, VolumeRef{Region: o.Attributes[AttrRegion], ID: o.ID})
			byID[o.ID] = o
		} else {
			tokens = append(tokens, tok)
		}
	}
	found, err := p.cloud.Volumes(ctx, tokens, refs)
	if err != nil && providers.CodeOf(err) != providers.NotFound {
		return err
	}
	wanted := map[string]bool{}
	for _, tok := range tokens {
		wanted[tok] = true
	}
	// A volume may come twice: by its tag, and by its ID as a registered
	// one (a volume_id naming a volume dstack made).
	for _, v := range found {
		if v.Token != "" && wanted[v.Token] {
			wanted[v.Token] = false
			address := v.Token
			if rec, ok := p.recalled(v.Token); ok {
				address = rec.Address
			}
			out[v.Token] = volumeObject(v.Token, address, v)
			continue
		}
		if rec, ok := byID[v.ID]; ok {
			delete(byID, v.ID)
			o := volumeObject(rec.Token, rec.Address, v)
			o.Attributes[providers.AttrRegistered] = "true"
			out[rec.Token] = o
		}
	}
	return nil
}

func (p *Provider) deleteVolume(ctx context.Context, id string) error {
	o, ok := p.byID(providers.KindVolume, id)
	if !ok {
		return fmt.Errorf("volume %s is not known (it is not in state)", id)
	}
	if o.Attributes[providers.AttrRegistered] == "true" {
		return nil // not dstack's: forgotten, kept
	}
	region := o.Attributes[AttrRegion]
	if o.Host != "" {
		if err := p.cloud.DetachVolume(ctx, region, id); err != nil {
			return err
		}
	}
	return p.cloud.DeleteVolume(ctx, region, id)
}
