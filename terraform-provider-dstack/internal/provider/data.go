package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/dstackai/dstack-go/lang"
	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/offers"
	"github.com/dstackai/dstack-go/state"
	"github.com/dstackai/dstack-go/terraform-provider-dstack/internal/tfplugin"
)

var offerType = tfplugin.ObjectOf(map[string]tfplugin.Type{
	"backend":       tfplugin.StringType,
	"region":        tfplugin.StringType,
	"instance_type": tfplugin.StringType,
	"cpus":          tfplugin.NumberType,
	"memory":        tfplugin.StringType,
	"disk":          tfplugin.StringType,
	"gpu_vendor":    tfplugin.StringType,
	"gpu_name":      tfplugin.StringType,
	"gpu_count":     tfplugin.NumberType,
	"gpu_memory":    tfplugin.StringType,
	"spot":          tfplugin.BoolType,
	"price":         tfplugin.NumberType,
})

// offersData is dstack_offers: the catalog's machines that match a
// resources spec, cheapest first, as `dstack offer` lists them.
type offersData struct{ p *dstack }

// specFields are the resources spec attributes, derived from the model
// like a resource's `resources` block.
var specFields = blockOf(reflectTypeOfSpec(), false)

func (o *offersData) Schema() tfplugin.Schema {
	b := tfplugin.Block{Description: "The machines the configured backends offer that match a resources spec, cheapest first: what `dstack offer` lists. Offers of clouds come from dstack's offline catalog; the `local` backend offers this machine."}
	b.Attributes = append(b.Attributes, specFields.Attributes...)
	b.Attributes = append(b.Attributes,
		tfplugin.Attribute{Name: "backends", Type: tfplugin.ListOf(tfplugin.StringType), Optional: true, Description: "Only these backends."},
		tfplugin.Attribute{Name: "regions", Type: tfplugin.ListOf(tfplugin.StringType), Optional: true, Description: "Only these regions."},
		tfplugin.Attribute{Name: "spot_policy", Type: tfplugin.StringType, Optional: true, Description: "`spot`, `on-demand` (the default) or `auto` (both)."},
		tfplugin.Attribute{Name: "max_price", Type: tfplugin.NumberType, Optional: true, Description: "The highest price, in USD per hour."},
		tfplugin.Attribute{Name: "limit", Type: tfplugin.NumberType, Optional: true, Description: "At most this many offers (default 50)."},
		tfplugin.Attribute{Name: "offers", Type: tfplugin.ListOf(offerType), Computed: true, Description: "The matching offers, cheapest first: `backend`, `region`, `instance_type`, `cpus`, `memory`, `disk`, `gpu_vendor`, `gpu_name`, `gpu_count`, `gpu_memory`, `spot`, `price` (USD per hour)."},
	)
	return tfplugin.Schema{Block: b}
}

func (o *offersData) Read(ctx context.Context, cfg map[string]any) (map[string]any, tfplugin.Diagnostics) {
	var diags tfplugin.Diagnostics
	if o.p.set == nil {
		diags.Errorf(nil, "Provider not configured", "The dstack provider was not configured.")
		return nil, diags
	}
	var spec resources.Spec
	dec := lang.NewDecoder()
	dec.Decode(structNode(reflectTypeOfSpec(), cfg, false), &spec, "")
	for _, d := range dec.Diags {
		diags.Errorf(attrPath(specFields, d.Field), d.Summary, "%s", d.Detail)
	}
	f := offers.Filter{Backends: strList(cfg["backends"]), Regions: strList(cfg["regions"])}
	switch p := str(cfg["spot_policy"]); p {
	case "", "on-demand":
		f.Spot = new(false)
	case "spot":
		f.Spot = new(true)
	case "auto":
	default:
		diags.Errorf(tfplugin.Path{"spot_policy"}, fmt.Sprintf("Invalid spot_policy %q", p), "Use spot, on-demand or auto.")
	}
	if mp, ok := cfg["max_price"].(float64); ok {
		f.MaxPrice = mp
	}
	if diags.HasErrors() {
		return nil, diags
	}
	all, err := o.p.set.Offers(ctx)
	if err != nil {
		diags.FromError("Cannot list offers", err)
		return nil, diags
	}
	limit := 50
	if l, ok := cfg["limit"].(float64); ok && l > 0 {
		limit = int(l)
	}
	list := []any{}
	for _, of := range offers.Match(all, spec, f) {
		if len(list) == limit {
			break
		}
		m := map[string]any{"backend": of.Backend, "region": of.Region, "instance_type": of.InstanceType,
			"cpus": float64(of.CPUs), "memory": of.Memory.String(), "disk": of.Disk.String(), "spot": of.Spot,
			"price": of.PricePerHour, "gpu_vendor": "", "gpu_name": "", "gpu_count": 0.0, "gpu_memory": ""}
		if of.GPU != nil {
			m["gpu_vendor"], m["gpu_name"], m["gpu_count"], m["gpu_memory"] = of.GPU.Vendor, of.GPU.Name, float64(of.GPU.Count), of.GPU.MemoryMB.String()
		}
		list = append(list, m)
	}
	out := map[string]any{}
	for k, v := range cfg {
		out[k] = v
	}
	out["offers"] = list
	return out, diags
}

func strList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// fleetData is dstack_fleet: a fleet by name, managed in this
// configuration or with the dstack CLI.
type fleetData struct{ p *dstack }

func (f *fleetData) Schema() tfplugin.Schema {
	b := tfplugin.Block{Description: "A fleet by name: one this configuration manages, or one made with the dstack CLI (found in the dstack state the provider is configured with). Runs name it in `fleets`."}
	b.Attributes = append(b.Attributes,
		tfplugin.Attribute{Name: "name", Type: tfplugin.StringType, Required: true, Description: "The fleet's name."},
		tfplugin.Attribute{Name: "resources", Type: tfplugin.StringType, Computed: true, Description: "The fleet's resources spec (`cpu=2.. memory=8GB.. gpu=H100:8 disk=100GB..`)."},
		tfplugin.Attribute{Name: "nodes", Type: tfplugin.StringType, Computed: true, Description: "The fleet's size as configured: a number or a range."},
	)
	b.Attributes = append(b.Attributes, computedAttrs...)
	return tfplugin.Schema{Block: b}
}

func (f *fleetData) Read(ctx context.Context, cfg map[string]any) (map[string]any, tfplugin.Diagnostics) {
	var diags tfplugin.Diagnostics
	name := str(cfg["name"])
	addr := "fleet." + name
	var rec *state.Resource
	if _, sto, err := f.p.ready(); err == nil {
		st, _, err := sto.snapshot(ctx)
		if err != nil {
			diags.Errorf(tfplugin.Path{"name"}, fmt.Sprintf("Fleet %q cannot be read", name), "%v.", err)
			return nil, diags
		}
		rec = st.Resource(addr) // one this provider manages
	}
	if rec == nil {
		if f.p.settings == nil {
			diags.Errorf(nil, "Provider not configured", "The dstack provider was not configured.")
			return nil, diags
		}
		var err error
		if rec, err = f.p.settings.dstackState(ctx, addr); err != nil {
			diags.Errorf(tfplugin.Path{"name"}, fmt.Sprintf("Fleet %q not found", name), "It is not managed in this configuration, and %v.", err)
			return nil, diags
		}
	}
	out := map[string]any{"name": name, "resources": "", "nodes": ""}
	// A fleet whose apply was interrupted has no recorded configuration
	// yet; one that is recorded but does not read is an error.
	if _, recorded := rec.Attributes[planner.AttrSpec]; recorded {
		spec, err := recordedSpec(rec)
		if err != nil {
			diags.Errorf(tfplugin.Path{"name"}, fmt.Sprintf("Fleet %q cannot be read", name), "%v.", err)
			return nil, diags
		}
		if fl, ok := spec.(*lang.Fleet); ok {
			out["resources"] = describeResources(fl.Resources)
			if fl.Nodes != nil {
				out["nodes"] = formString(reflectValue(*fl.Nodes))
			}
		}
	}
	fillComputed(out, rec, addr, false)
	return out, diags
}

func describeResources(r *resources.Spec) string {
	if r == nil {
		return resources.Spec{}.WithDefaults().String()
	}
	return strings.TrimSpace(r.WithDefaults().String())
}
