package aws

import (
	"context"
	"fmt"

	"github.com/dstackai/dstack-go/providers"
)

// AttrMachine is the instance a job of a run without a fleet runs on:
// launched for it (tagged with the job's token) and terminated with it.
const AttrMachine = "aws_machine"

// createOwnMachineJob runs a job of a run without a fleet: it launches an
// instance of the job's offer, tagged with the job's token, installs the
// agent there and starts the job on it.
func (p *Provider) createOwnMachineJob(ctx context.Context, req providers.CreateRequest) (providers.Object, error) {
	if req.Offer == nil {
		return providers.Object{}, fmt.Errorf("%s: neither an instance to run on nor an offer to launch", req.Address)
	}
	// The run's volumes pin its machine to their zone.
	vols, err := p.mountedVolumes(req.Spec)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	zone, err := volumesZone(vols)
	if err != nil {
		return providers.Object{}, fmt.Errorf("%s: %w", req.Address, err)
	}
	mreq := req
	mreq.Kind = providers.KindInstance
	if zone != "" {
		off := *req.Offer
		if off.Zone != "" && off.Zone != zone {
			return providers.Object{}, providers.Errorf(providers.Unsupported, "%s: the offer is in %s, its volumes in %s", req.Address, off.Zone, zone)
		}
		off.Zone = zone
		mreq.Offer = &off
	}
	m, err := p.createInstance(ctx, mreq)
	if err != nil {
		return providers.Object{}, err
	}
	fail := func(err error) (providers.Object, error) {
		p.terminateAfter(Instance{ID: m.ID, Region: m.Attributes[AttrRegion]}, err)
		return providers.Object{}, err
	}
	attached, err := p.attach(ctx, vols, m.Attributes[AttrRegion], m.Attributes[AttrZone], m.ID)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", req.Address, err))
	}
	jreq, err := p.mountFor(ctx, req, m.ID, attached)
	if err != nil {
		return fail(err)
	}
	jreq.Host = m.ID
	o, err := p.ssh.Create(ctx, jreq)
	if err != nil {
		return fail(err)
	}
	o = onMachine(o, m.Attributes)
	setAttached(o.Attributes, attached)
	o.Offer = m.Offer
	p.remember(o)
	return o, nil
}

// onMachine is a job as the provider reports it when it runs on a machine
// of its own: with the machine's attributes (its addresses, how it is
// reached), and no fleet instance as its host.
func onMachine(o providers.Object, machine map[string]string) providers.Object {
	if o.Attributes == nil {
		o.Attributes = map[string]string{}
	}
	for k, v := range machine {
		if _, ok := o.Attributes[k]; !ok {
			o.Attributes[k] = v
		}
	}
	o.Attributes[AttrMachine] = o.Attributes[providers.AttrHostID]
	o.Host = ""
	return o
}

// ownMachine returns the machine of a recalled job with one, as an
// instance object, or false.
func ownMachine(o providers.Object) (providers.Object, bool) {
	id := o.Attributes[AttrMachine]
	if o.Kind != providers.KindJob || id == "" {
		return providers.Object{}, false
	}
	return providers.Object{Kind: providers.KindInstance, ID: id, Address: o.Address, Attributes: o.Attributes}, true
}
