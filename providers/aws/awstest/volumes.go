package awstest

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// volume is an EBS volume.
type volume struct {
	ID, Zone, Type, State string // creating, available, in-use, deleted
	Size                  int
	Instance, Device      string
	Tags                  map[string]string
	Created               time.Time
}

// Volume is what a test sees of a volume.
type Volume struct {
	ID, Region, Zone, Type, State, Instance, Device string
	Size                                            int
	Tags                                            map[string]string
}

// Volumes returns the volumes of every region that are not deleted.
func (f *Fake) Volumes() []Volume {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Volume
	for _, r := range f.regions {
		for _, v := range r.volumes {
			out = append(out, Volume{ID: v.ID, Region: r.name, Zone: v.Zone, Type: v.Type, State: v.State, Instance: v.Instance,
				Device: v.Device, Size: v.Size, Tags: v.Tags})
		}
	}
	return out
}

type attachmentXML struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type volumeXML struct {
	VolumeID         string          `xml:"volumeId"`
	Size             int             `xml:"size"`
	SnapshotID       string          `xml:"snapshotId"`
	AvailabilityZone string          `xml:"availabilityZone"`
	Status           string          `xml:"status"`
	CreateTime       string          `xml:"createTime"`
	Attachments      []attachmentXML `xml:"attachmentSet>item"`
	TagSet           []tag           `xml:"tagSet>item"`
	VolumeType       string          `xml:"volumeType"`
	Encrypted        bool            `xml:"encrypted"`
}

type createVolumeResponse struct {
	XMLName xml.Name `xml:"CreateVolumeResponse"`
	Response
	VolumeID         string `xml:"volumeId"`
	Size             int    `xml:"size"`
	SnapshotID       string `xml:"snapshotId"`
	AvailabilityZone string `xml:"availabilityZone"`
	Status           string `xml:"status"`
	CreateTime       string `xml:"createTime"`
	VolumeType       string `xml:"volumeType"`
	Encrypted        bool   `xml:"encrypted"`
	TagSet           []tag  `xml:"tagSet>item"`
}

type describeVolumesResponse struct {
	XMLName xml.Name `xml:"DescribeVolumesResponse"`
	Response
	Volumes   []volumeXML `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type attachResponse struct {
	XMLName xml.Name
	Response
	attachmentXML
}

func (f *Fake) registerVolumes() {
	f.handlers["CreateVolume"] = f.createVolume
	f.handlers["DescribeVolumes"] = f.describeVolumes
	f.handlers["AttachVolume"] = f.attachVolume
	f.handlers["DetachVolume"] = f.detachVolume
	f.handlers["DeleteVolume"] = f.deleteVolume
}

func (f *Fake) createVolume(r *Request) (any, error) {
	zone := r.Get("AvailabilityZone")
	size, err := strconv.Atoi(r.Get("Size"))
	if err != nil || size < 1 || size > 16384 {
		return nil, Errorf("InvalidParameterValue", "Volume of size %q is invalid", r.Get("Size"))
	}
	typ := r.Get("VolumeType")
	if typ == "" {
		typ = "gp2"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	if !contains(Zones(reg.name), zone) {
		return nil, Errorf("InvalidZone.NotFound", "The zone '%s' does not exist.", zone)
	}
	v := &volume{ID: newID("vol"), Zone: zone, Type: typ, State: "available", Size: size, Tags: r.Tags("volume"), Created: f.now()}
	reg.volumes[v.ID] = v
	return createVolumeResponse{Response: NewResponse(), VolumeID: v.ID, Size: size, AvailabilityZone: zone, Status: "creating",
		CreateTime: v.Created.UTC().Format("2006-01-02T15:04:05.000Z"), VolumeType: typ, TagSet: tagSet(v.Tags)}, nil
}

func (f *Fake) volumeXML(v *volume) volumeXML {
	x := volumeXML{VolumeID: v.ID, Size: v.Size, AvailabilityZone: v.Zone, Status: v.State,
		CreateTime: v.Created.UTC().Format("2006-01-02T15:04:05.000Z"), VolumeType: v.Type, TagSet: tagSet(v.Tags)}
	if v.Instance != "" {
		x.Attachments = []attachmentXML{{VolumeID: v.ID, InstanceID: v.Instance, Device: v.Device, Status: "attached",
			AttachTime: v.Created.UTC().Format("2006-01-02T15:04:05.000Z")}}
	}
	return x
}

func (f *Fake) describeVolumes(r *Request) (any, error) {
	ids := r.List("VolumeId")
	filters := r.Filters()
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	for _, id := range ids {
		if reg.volumes[id] == nil {
			return nil, Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	resp := describeVolumesResponse{Response: NewResponse()}
	for _, v := range reg.volumes {
		if (len(ids) > 0 && !contains(ids, v.ID)) || !matchTags(v.Tags, filters) || !matchField(filters, "status", v.State) ||
			!matchField(filters, "availability-zone", v.Zone) {
			continue
		}
		resp.Volumes = append(resp.Volumes, f.volumeXML(v))
	}
	return resp, nil
}

func (f *Fake) attachVolume(r *Request) (any, error) {
	vid, iid, dev := r.Get("VolumeId"), r.Get("InstanceId"), r.Get("Device")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	v, i := reg.volumes[vid], reg.instances[iid]
	switch {
	case v == nil:
		return nil, Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", vid)
	case i == nil || i.State == "terminated":
		return nil, Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", iid)
	case v.Zone != i.Zone:
		return nil, Errorf("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", vid, iid)
	case v.Instance != "":
		return nil, Errorf("VolumeInUse", "%s is already attached to an instance", vid)
	}
	if err := f.attachDisk(v, i); err != nil {
		return nil, Errorf("InternalError", "attaching %s: %v", vid, err)
	}
	v.Instance, v.Device, v.State = iid, dev, "in-use"
	return attachResponse{XMLName: xml.Name{Local: "AttachVolumeResponse"}, Response: NewResponse(),
		attachmentXML: attachmentXML{VolumeID: vid, InstanceID: iid, Device: dev, Status: "attaching",
			AttachTime: f.now().UTC().Format("2006-01-02T15:04:05.000Z")}}, nil
}

func (f *Fake) detachVolume(r *Request) (any, error) {
	vid := r.Get("VolumeId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	v := reg.volumes[vid]
	if v == nil {
		return nil, Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", vid)
	}
	if v.Instance == "" {
		return nil, Errorf("IncorrectState", "Volume '%s' is in the 'available' state.", vid)
	}
	a := attachmentXML{VolumeID: vid, InstanceID: v.Instance, Device: v.Device, Status: "detaching",
		AttachTime: v.Created.UTC().Format("2006-01-02T15:04:05.000Z")}
	if i := reg.instances[v.Instance]; i != nil {
		if dm, ok := i.machine.(DiskMachine); ok {
			if err := dm.DetachDisk(vid); err != nil {
				return nil, Errorf("InternalError", "detaching %s: %v", vid, err)
			}
		}
	}
	v.Instance, v.Device, v.State = "", "", "available"
	return attachResponse{XMLName: xml.Name{Local: "DetachVolumeResponse"}, Response: NewResponse(), attachmentXML: a}, nil
}

func (f *Fake) deleteVolume(r *Request) (any, error) {
	vid := r.Get("VolumeId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	v := reg.volumes[vid]
	if v == nil {
		return nil, Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", vid)
	}
	if v.Instance != "" {
		return nil, Errorf("VolumeInUse", "Volume %s is currently attached to %s", vid, v.Instance)
	}
	delete(reg.volumes, vid)
	if f.diskDir != "" {
		_ = os.Remove(f.diskFile(vid))
	}
	return returnTrue("DeleteVolume"), nil
}

// diskFile is where a volume's data is kept (with Options.DiskDir).
func (f *Fake) diskFile(id string) string { return filepath.Join(f.diskDir, id+".img") }

// attachDisk gives the instance's machine the volume's data as a block
// device, when the fake keeps volumes' data and the machine takes disks.
func (f *Fake) attachDisk(v *volume, i *instance) error {
	dm, ok := i.machine.(DiskMachine)
	if f.diskDir == "" || !ok {
		return nil
	}
	file := f.diskFile(v.ID)
	if _, err := os.Stat(file); os.IsNotExist(err) {
		fh, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		// Sparse: a volume's size costs nothing until written.
		err = fh.Truncate(int64(v.Size) << 30)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return dm.AttachDisk(v.ID, file)
}
