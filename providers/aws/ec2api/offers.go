package ec2api

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	ptypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
	"golang.org/x/sync/errgroup"

	"github.com/dstackai/dstack-go/lang/resources"
	"github.com/dstackai/dstack-go/providers/aws"
	"github.com/dstackai/dstack-go/providers/offers"
)

// maxEBSGB is the largest root volume an offer can have: EBS's 16 TiB.
const maxEBSGB = 16384

// pricingRegion is where the Price List API answers (it also does in
// eu-central-1 and ap-south-1, with the same data).
const pricingRegion = "us-east-1"

// Offers implements aws.Cloud: what the account can launch in the
// configured regions, read from EC2 and the Price List API. In each
// region: the instance types and their GPUs (DescribeInstanceTypes), the
// zones each type runs in (DescribeInstanceTypeOfferings by
// availability-zone), the current spot price in each zone
// (DescribeSpotPriceHistory, Linux/UNIX) and the on-demand price
// (Pricing GetProducts: Linux, shared tenancy, no software). A type has
// one offer per region and kind, pinned to a zone that runs it: on demand
// the first (the price is the region's), spot the one where it is
// cheapest now. One offer per type and region, as in the catalog, keeps
// the planner's failover list spread over types and regions (a capacity
// or quota error moves to the next of those) instead of filling it with
// one type's zones. A type without a price for the kind is left out.
// Regions are read in parallel, four at a time.
func (c *Cloud) Offers(ctx context.Context) ([]offers.Offer, error) {
	regions := c.regions()
	now := time.Now().UTC().Truncate(time.Second)
	per := make([][]offers.Offer, len(regions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, region := range regions {
		g.Go(func() error {
			out, err := c.regionOffers(gctx, region, now)
			if err != nil {
				return fmt.Errorf("reading the offers of %s: %w", region, err)
			}
			per[i] = out
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var all []offers.Offer
	for _, out := range per {
		all = append(all, out...)
	}
	return all, nil
}

// regionOffers reads one region's offers.
func (c *Cloud) regionOffers(ctx context.Context, region string, now time.Time) ([]offers.Offer, error) {
	cl := c.client(region)
	var (
		typesOf  map[string]types.InstanceTypeInfo
		zones    map[string][]string
		spot     map[string]float64
		onDemand map[string]float64
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { typesOf, err = instanceTypes(gctx, cl); return err })
	g.Go(func() (err error) { zones, err = typeZones(gctx, cl); return err })
	g.Go(func() (err error) { spot, err = spotPrices(gctx, cl, now); return err })
	g.Go(func() (err error) { onDemand, err = c.onDemandPrices(gctx, region); return err })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []offers.Offer
	for _, name := range sortedKeys(zones) {
		info, ok := typesOf[name]
		if !ok {
			continue
		}
		base, ok := offerOf(info)
		if !ok {
			continue
		}
		base.Backend, base.Region, base.PricedAt = aws.Backend, region, now
		spotOK := false
		for _, u := range info.SupportedUsageClasses {
			spotOK = spotOK || u == types.UsageClassTypeSpot
		}
		if len(zones[name]) == 0 {
			continue
		}
		if price, ok := onDemand[name]; ok {
			o := base
			o.Zone, o.PricePerHour = zones[name][0], price
			out = append(out, o)
		}
		if !spotOK {
			continue
		}
		cheapest := ""
		for _, zone := range zones[name] {
			if price, ok := spot[zone+"/"+name]; ok && (cheapest == "" || price < spot[cheapest+"/"+name]) {
				cheapest = zone
			}
		}
		if cheapest != "" {
			o := base
			o.Zone, o.Spot, o.PricePerHour = cheapest, true, spot[cheapest+"/"+name]
			out = append(out, o)
		}
	}
	return out, nil
}

// offerOf is what an instance type is as an offer, without its place
// and price; false for a type dstack cannot run (no x86_64 or arm64).
func offerOf(info types.InstanceTypeInfo) (offers.Offer, bool) {
	o := offers.Offer{InstanceType: string(info.InstanceType), Disk: resources.Memory(maxEBSGB * 1024)}
	if info.VCpuInfo != nil && info.VCpuInfo.DefaultVCpus != nil {
		o.CPUs = int(*info.VCpuInfo.DefaultVCpus)
	}
	if info.MemoryInfo != nil && info.MemoryInfo.SizeInMiB != nil {
		o.Memory = resources.Memory(*info.MemoryInfo.SizeInMiB)
	}
	if info.ProcessorInfo != nil {
		for _, a := range info.ProcessorInfo.SupportedArchitectures {
			switch a {
			case types.ArchitectureTypeX8664:
				o.Arch = "x86"
			case types.ArchitectureTypeArm64:
				o.Arch = "arm"
			}
		}
	}
	if o.Arch == "" || o.CPUs == 0 {
		return o, false
	}
	if info.GpuInfo != nil && len(info.GpuInfo.Gpus) > 0 {
		g := info.GpuInfo.Gpus[0]
		gpu := &offers.GPU{Name: awssdk.ToString(g.Name), Vendor: strings.ToLower(awssdk.ToString(g.Manufacturer))}
		for _, d := range info.GpuInfo.Gpus {
			gpu.Count += int(awssdk.ToInt32(d.Count))
		}
		if g.MemoryInfo != nil {
			gpu.MemoryMB = resources.Memory(awssdk.ToInt32(g.MemoryInfo.SizeInMiB))
		}
		o.GPU = gpu
	}
	return o, true
}

// instanceTypes lists the region's instance types by name.
func instanceTypes(ctx context.Context, cl *ec2.Client) (map[string]types.InstanceTypeInfo, error) {
	out := map[string]types.InstanceTypeInfo{}
	p := ec2.NewDescribeInstanceTypesPaginator(cl, &ec2.DescribeInstanceTypesInput{MaxResults: awssdk.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("DescribeInstanceTypes", err)
		}
		for _, t := range page.InstanceTypes {
			out[string(t.InstanceType)] = t
		}
	}
	return out, nil
}

// typeZones lists the zones of the region each instance type runs in.
func typeZones(ctx context.Context, cl *ec2.Client) (map[string][]string, error) {
	out := map[string][]string{}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(cl, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeAvailabilityZone, MaxResults: awssdk.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("DescribeInstanceTypeOfferings", err)
		}
		for _, o := range page.InstanceTypeOfferings {
			name := string(o.InstanceType)
			out[name] = append(out[name], awssdk.ToString(o.Location))
		}
	}
	for _, z := range out {
		sort.Strings(z)
	}
	return out, nil
}

// spotPrices are the Linux/UNIX spot prices in effect now, by "zone/type".
func spotPrices(ctx context.Context, cl *ec2.Client, now time.Time) (map[string]float64, error) {
	out := map[string]float64{}
	at := map[string]time.Time{}
	p := ec2.NewDescribeSpotPriceHistoryPaginator(cl, &ec2.DescribeSpotPriceHistoryInput{
		ProductDescriptions: []string{"Linux/UNIX"}, StartTime: awssdk.Time(now), MaxResults: awssdk.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("DescribeSpotPriceHistory", err)
		}
		for _, sp := range page.SpotPriceHistory {
			price, err := strconv.ParseFloat(awssdk.ToString(sp.SpotPrice), 64)
			if err != nil {
				continue
			}
			k := awssdk.ToString(sp.AvailabilityZone) + "/" + string(sp.InstanceType)
			if ts := awssdk.ToTime(sp.Timestamp); at[k].IsZero() || ts.After(at[k]) {
				out[k], at[k] = price, ts
			}
		}
	}
	return out, nil
}

// onDemandPrices are the region's on-demand Linux prices by instance
// type, from the Price List API (which honours AWS_ENDPOINT_URL_PRICING).
func (c *Cloud) onDemandPrices(ctx context.Context, region string) (map[string]float64, error) {
	cl := c.pricingClient()
	match := func(field, value string) ptypes.Filter {
		return ptypes.Filter{Type: ptypes.FilterTypeTermMatch, Field: awssdk.String(field), Value: awssdk.String(value)}
	}
	in := &pricing.GetProductsInput{ServiceCode: awssdk.String("AmazonEC2"), FormatVersion: awssdk.String("aws_v1"),
		MaxResults: awssdk.Int32(100), Filters: []ptypes.Filter{match("regionCode", region), match("operatingSystem", "Linux"),
			match("tenancy", "Shared"), match("preInstalledSw", "NA"), match("capacitystatus", "Used")}}
	out := map[string]float64{}
	p := pricing.NewGetProductsPaginator(cl, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("Price List GetProducts", err)
		}
		for _, doc := range page.PriceList {
			typ, price, ok := onDemandPrice(doc)
			if ok {
				out[typ] = price
			}
		}
	}
	return out, nil
}

// priceListItem is the part of a price list document (format aws_v1)
// an on-demand price is read from.
type priceListItem struct {
	Product struct {
		Attributes struct {
			InstanceType string `json:"instanceType"`
		} `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// onDemandPrice reads a price list document's instance type and hourly
// USD price.
func onDemandPrice(doc string) (string, float64, bool) {
	var it priceListItem
	if err := json.Unmarshal([]byte(doc), &it); err != nil || it.Product.Attributes.InstanceType == "" {
		return "", 0, false
	}
	for _, term := range it.Terms.OnDemand {
		for _, d := range term.PriceDimensions {
			if d.Unit != "Hrs" {
				continue
			}
			if price, err := strconv.ParseFloat(d.PricePerUnit["USD"], 64); err == nil && price > 0 {
				return it.Product.Attributes.InstanceType, price, true
			}
		}
	}
	return "", 0, false
}

// pricingClient is the Price List API's client.
func (c *Cloud) pricingClient() *pricing.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pricing == nil {
		c.pricing = pricing.NewFromConfig(c.cfg, func(o *pricing.Options) { o.Region = pricingRegion })
	}
	return c.pricing
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
