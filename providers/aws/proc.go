package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"

	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/providers/providerproc"
)

// Program is the program that serves the aws backend's Cloud.
const Program = "dstack-provider-aws"

// dstack speaks to dstack-provider-aws through providerproc (calls
// with IDs as newline-delimited JSON on the program's standard input and
// output, the first opening the cloud with the settings). Credentials
// travel only in the open message, on the pipe, and only when the
// settings give them; the program's own environment (which it inherits)
// is where the SDK's default chain finds them otherwise.

// Operations.
const (
	opOffers       = "offers"
	opLaunch       = "launch"
	opInstances    = "instances"
	opTerminate    = "terminate"
	opCreateVolume = "create-volume"
	opVolumes      = "volumes"
	opAttach       = "attach-volume"
	opDetach       = "detach-volume"
	opDeleteVolume = "delete-volume"
	opConsole      = "console-output"
)

// Args of the calls.
type (
	instancesArgs struct {
		Tokens []string `json:"tokens"`
	}
	regionIDArgs struct {
		Region   string `json:"region"`
		ID       string `json:"id"`
		Instance string `json:"instance,omitempty"`
		Device   string `json:"device,omitempty"`
	}
	volumesArgs struct {
		Tokens []string    `json:"tokens,omitempty"`
		IDs    []VolumeRef `json:"ids,omitempty"`
	}
)

// FindProgram finds dstack-provider-aws: beside this program, else on
// PATH.
func FindProgram() (string, error) {
	return providerproc.FindProgram(Program, "aws")
}

// Process is a Cloud served by dstack-provider-aws. It is safe for
// concurrent use.
type Process struct {
	c *providerproc.Client
}

var _ Cloud = (*Process)(nil)

// StartProcess runs cmd (its standard streams unset) and opens the cloud
// with settings in it.
func StartProcess(ctx context.Context, cmd *exec.Cmd, s Settings) (*Process, error) {
	c, err := providerproc.Start(ctx, cmd, s)
	if err != nil {
		return nil, err
	}
	return &Process{c: c}, nil
}

// Close ends the process: its input ends and it exits (it is killed
// after 10 s).
func (p *Process) Close() error {
	return p.c.Close()
}

// Offers implements Cloud.
func (p *Process) Offers(ctx context.Context) ([]offers.Offer, error) {
	var out []offers.Offer
	err := p.c.Call(ctx, opOffers, nil, &out)
	return out, err
}

// Launch implements Cloud.
func (p *Process) Launch(ctx context.Context, req LaunchRequest) (Instance, error) {
	var out Instance
	err := p.c.Call(ctx, opLaunch, req, &out)
	return out, err
}

// Instances implements Cloud.
func (p *Process) Instances(ctx context.Context, tokens []string) ([]Instance, error) {
	var out []Instance
	err := p.c.Call(ctx, opInstances, instancesArgs{Tokens: tokens}, &out)
	return out, err
}

// Terminate implements Cloud.
func (p *Process) Terminate(ctx context.Context, region, id string) error {
	return p.c.Call(ctx, opTerminate, regionIDArgs{Region: region, ID: id}, nil)
}

// CreateVolume implements Cloud.
func (p *Process) CreateVolume(ctx context.Context, req VolumeRequest) (Volume, error) {
	var out Volume
	err := p.c.Call(ctx, opCreateVolume, req, &out)
	return out, err
}

// Volumes implements Cloud.
func (p *Process) Volumes(ctx context.Context, tokens []string, ids []VolumeRef) ([]Volume, error) {
	var out []Volume
	err := p.c.Call(ctx, opVolumes, volumesArgs{Tokens: tokens, IDs: ids}, &out)
	return out, err
}

// AttachVolume implements Cloud.
func (p *Process) AttachVolume(ctx context.Context, region, volumeID, instanceID, device string) error {
	return p.c.Call(ctx, opAttach, regionIDArgs{Region: region, ID: volumeID, Instance: instanceID, Device: device}, nil)
}

// DetachVolume implements Cloud.
func (p *Process) DetachVolume(ctx context.Context, region, volumeID string) error {
	return p.c.Call(ctx, opDetach, regionIDArgs{Region: region, ID: volumeID}, nil)
}

// DeleteVolume implements Cloud.
func (p *Process) DeleteVolume(ctx context.Context, region, volumeID string) error {
	return p.c.Call(ctx, opDeleteVolume, regionIDArgs{Region: region, ID: volumeID}, nil)
}

// ConsoleOutput implements Cloud.
func (p *Process) ConsoleOutput(ctx context.Context, region, instanceID string) (string, error) {
	var out string
	err := p.c.Call(ctx, opConsole, regionIDArgs{Region: region, ID: instanceID}, &out)
	return out, err
}

// Serve serves a Cloud on r and w (dstack-provider-aws's standard input
// and output) until r ends: open makes the cloud from the settings the
// first message carries.
func Serve(r io.Reader, w io.Writer, open func(context.Context, Settings) (Cloud, error)) error {
	return providerproc.ServeProvider(r, w, open, dispatch)
}

func dispatch(ctx context.Context, c Cloud, op string, args json.RawMessage) (any, error) {
	decode := func(v any) error { return providerproc.Decode(op, args, v) }
	switch op {
	case opOffers:
		return c.Offers(ctx)
	case opLaunch:
		var a LaunchRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Launch(ctx, a)
	case opInstances:
		var a instancesArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Instances(ctx, a.Tokens)
	case opTerminate:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.Terminate(ctx, a.Region, a.ID)
	case opCreateVolume:
		var a VolumeRequest
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.CreateVolume(ctx, a)
	case opVolumes:
		var a volumesArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.Volumes(ctx, a.Tokens, a.IDs)
	case opAttach:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.AttachVolume(ctx, a.Region, a.ID, a.Instance, a.Device)
	case opDetach:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.DetachVolume(ctx, a.Region, a.ID)
	case opDeleteVolume:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, c.DeleteVolume(ctx, a.Region, a.ID)
	case opConsole:
		var a regionIDArgs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return c.ConsoleOutput(ctx, a.Region, a.ID)
	}
	return nil, fmt.Errorf("unknown operation %q", op)
}
