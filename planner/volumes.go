package planner

import (
	"fmt"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/providers/offers"
)

// site is where a network volume lives: a backend and a region ("" for
// a backend without regions, such as kubernetes).
type site struct {
	volume, backend, region string
}

func (s site) String() string {
	if s.region == "" {
		return s.backend
	}
	return s.backend + " " + s.region
}

// holds reports whether a machine of backend in region can attach the
// volume.
func (s site) holds(backend, region string) bool {
	return strings.EqualFold(s.backend, backend) && (s.region == "" || strings.EqualFold(s.region, region))
}

// volumeSites is where a run's network volumes are: one entry per mount,
// each listing the sites of the mount's volumes (alternatives: any one
// will do). A job goes only where every mount has a volume it can
// attach, since a network volume attaches only to machines of its own
// backend and region.
type volumeSites [][]site

// volumeSitesOf finds each mounted volume in the configuration, else in
// the state (a volume applied earlier from other files). A volume found
// in neither (another project's) says nothing about where it is, so a
// mount naming one adds no constraint: the job may be meant to go there.
//
// rank is the job's node rank: a name written with ${{ dstack.node_rank }}
// names each job's own volume.
func (m *maker) volumeSitesOf(run *lang.RunConfig, rank int) volumeSites {
	var out volumeSites
	for _, mount := range run.Volumes {
		var sites []site
		for _, name := range mount.Name {
			name = jobVolumeName(name, rank)
			s, ok := m.volumeSite(name)
			if !ok {
				sites = nil
				break
			}
			sites = append(sites, s)
		}
		if len(sites) > 0 {
			out = append(out, sites)
		}
	}
	return out
}

func (m *maker) volumeSite(name string) (site, bool) {
	addr := lang.Address{Kind: lang.KindVolume, Name: name}
	if r := m.in.Config.Resources[addr]; r != nil {
		v := r.Spec.(*lang.Volume)
		return site{volume: name, backend: v.Backend, region: v.Region}, v.Backend != ""
	}
	if prior := m.in.Prior.Resource(addr.String()); prior != nil {
		// A record that cannot be read is reported where the volume's
		// own change is planned; here it only tells nothing.
		raw, _, err := priorSpec(prior)
		if err != nil || raw == nil {
			return site{}, false
		}
		spec, err := lang.DecodeSpec(raw)
		if v, ok := spec.(*lang.Volume); err == nil && ok {
			return site{volume: name, backend: v.Backend, region: v.Region}, v.Backend != ""
		}
	}
	return site{}, false
}

// excludes says why a machine of backend in region cannot take the job
// (empty when it can).
func (vs volumeSites) excludes(backend, region string) string {
	for _, sites := range vs {
		ok := false
		for _, s := range sites {
			ok = ok || s.holds(backend, region)
		}
		if !ok {
			return fmt.Sprintf("it is in %s %s, and volume %s is in %s", backend, region, sites[0].volume, describeSites(sites))
		}
	}
	return ""
}

// filter keeps the offers whose machines can attach every mount's
// volume.
func (vs volumeSites) filter(list []offers.Offer) []offers.Offer {
	if len(vs) == 0 {
		return list
	}
	var out []offers.Offer
	for _, o := range list {
		if vs.excludes(o.Backend, o.Region) == "" {
			out = append(out, o)
		}
	}
	return out
}

// describe is how a placement error names the constraint: " and volumes
// data in aws us-east-1", or "".
func (vs volumeSites) describe() string {
	if len(vs) == 0 {
		return ""
	}
	var parts []string
	for _, sites := range vs {
		parts = append(parts, fmt.Sprintf("volume %s in %s", sites[0].volume, describeSites(sites)))
	}
	return " where its " + strings.Join(parts, " and ") + " can attach"
}

// describeSites names the sites of one mount's alternative volumes.
func describeSites(sites []site) string {
	var names []string
	for _, s := range sites {
		names = append(names, s.String())
	}
	return strings.Join(names, " or ")
}
