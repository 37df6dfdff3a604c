package awstest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dstackai/dstack-go/providers/offers"
)

// What an account can launch, as the fake answers the calls that list it:
// DescribeInstanceTypes (the types and their GPUs),
// DescribeInstanceTypeOfferings (the zones each type runs in),
// DescribeSpotPriceHistory (spot prices per zone), all in EC2's XML, and
// the Price List API's GetProducts (on-demand prices), in its JSON 1.1
// protocol (POST, X-Amz-Target: AWSPriceListService.GetProducts) at the
// same address, so that AWS_ENDPOINT_URL_PRICING may point there too.
//
// The fake starts from the embedded catalog's aws offers: every type in
// every zone of the catalog's regions, the catalog's prices. Tests change
// that with SetTypeZones, SetSpotPrice and SetOnDemandPrice, so that
// what a test sees can only have come from the fake.

// InstanceType is one instance type as DescribeInstanceTypes lists it.
type InstanceType struct {
	Name      string
	VCPUs     int
	MemoryMiB int64
	Arch      string // x86_64 or arm64
	GPU       *GPUDevice
	Spot      bool // spot among its supported usage classes
}

// GPUDevice is an instance type's GPUs.
type GPUDevice struct {
	Name         string // "H100"
	Manufacturer string // "NVIDIA"
	Count        int
	MemoryMiB    int64 // of one GPU
}

// offerData is the fake's account catalog; guarded by its own mutex.
type offerData struct {
	once     sync.Once
	mu       sync.Mutex
	types    map[string]InstanceType
	zones    map[string]map[string][]string // region → type → zones
	spot     map[string]float64             // zone/type → USD per hour
	onDemand map[string]float64             // region/type → USD per hour
}

func (d *offerData) init() {
	d.once.Do(func() {
		d.types, d.zones, d.spot, d.onDemand = map[string]InstanceType{}, map[string]map[string][]string{}, map[string]float64{}, map[string]float64{}
		all, _ := offers.Catalog()
		for _, o := range all {
			if o.Backend != "aws" {
				continue
			}
			t := d.types[o.InstanceType]
			t.Name, t.VCPUs, t.MemoryMiB = o.InstanceType, o.CPUs, int64(o.Memory)
			t.Arch = "x86_64"
			if o.Arch == "arm" {
				t.Arch = "arm64"
			}
			if o.GPU != nil {
				t.GPU = &GPUDevice{Name: o.GPU.Name, Manufacturer: manufacturer(o.GPU.Vendor), Count: o.GPU.Count, MemoryMiB: int64(o.GPU.MemoryMB)}
			}
			if d.zones[o.Region] == nil {
				d.zones[o.Region] = map[string][]string{}
			}
			d.zones[o.Region][o.InstanceType] = Zones(o.Region)
			if o.Spot {
				t.Spot = true
				for _, z := range Zones(o.Region) {
					d.spot[z+"/"+o.InstanceType] = o.PricePerHour
				}
			} else {
				d.onDemand[o.Region+"/"+o.InstanceType] = o.PricePerHour
			}
			d.types[o.InstanceType] = t
		}
	})
}

func manufacturer(vendor string) string {
	switch vendor {
	case "nvidia":
		return "NVIDIA"
	case "amd":
		return "AMD"
	}
	return vendor
}

// SetTypeZones makes instance type typ run only in zones of region
// (none: not in the region).
func (f *Fake) SetTypeZones(region, typ string, zones ...string) {
	f.offers.init()
	f.offers.mu.Lock()
	defer f.offers.mu.Unlock()
	if f.offers.zones[region] == nil {
		f.offers.zones[region] = map[string][]string{}
	}
	f.offers.zones[region][typ] = slices.Clone(zones)
}

// SetSpotPrice sets the current spot price of typ in zone.
func (f *Fake) SetSpotPrice(zone, typ string, price float64) {
	f.offers.init()
	f.offers.mu.Lock()
	defer f.offers.mu.Unlock()
	f.offers.spot[zone+"/"+typ] = price
}

// SetOnDemandPrice sets the on-demand price of typ in region.
func (f *Fake) SetOnDemandPrice(region, typ string, price float64) {
	f.offers.init()
	f.offers.mu.Lock()
	defer f.offers.mu.Unlock()
	f.offers.onDemand[region+"/"+typ] = price
}

func (f *Fake) registerOffers() {
	f.Handle("DescribeInstanceTypes", f.describeInstanceTypes)
	f.Handle("DescribeInstanceTypeOfferings", f.describeInstanceTypeOfferings)
	f.Handle("DescribeSpotPriceHistory", f.describeSpotPriceHistory)
}

// page cuts items to the page NextToken (an offset) and MaxResults ask
// for; the fake's pages hold at most 10 items unless asked for fewer, so
// that callers must follow nextToken.
func page[T any](r *Request, items []T) ([]T, string, error) {
	start := 0
	if t := r.Get("NextToken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", Errorf("InvalidNextToken", "The specified NextToken is not valid.")
		}
		start = n
	}
	size := 10
	if m, err := strconv.Atoi(r.Get("MaxResults")); err == nil && m > 0 && m < size {
		size = m
	}
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

type items[T any] struct {
	Items []T `xml:"item"`
}

type instanceTypeXML struct {
	InstanceType          string        `xml:"instanceType"`
	CurrentGeneration     bool          `xml:"currentGeneration"`
	SupportedUsageClasses items[string] `xml:"supportedUsageClasses"`
	ProcessorInfo         struct {
		SupportedArchitectures items[string] `xml:"supportedArchitectures"`
	} `xml:"processorInfo"`
	VCPUInfo struct {
		DefaultVCPUs int `xml:"defaultVCpus"`
	} `xml:"vCpuInfo"`
	MemoryInfo struct {
		SizeInMiB int64 `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
	GPUInfo *gpuInfoXML `xml:"gpuInfo,omitempty"`
}

type gpuInfoXML struct {
	GPUs                items[gpuDeviceXML] `xml:"gpus"`
	TotalGPUMemoryInMiB int64               `xml:"totalGpuMemoryInMiB"`
}

type gpuDeviceXML struct {
	Name         string `xml:"name"`
	Manufacturer string `xml:"manufacturer"`
	Count        int    `xml:"count"`
	MemoryInfo   struct {
		SizeInMiB int64 `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
}

type describeInstanceTypesResponse struct {
	XMLName xml.Name `xml:"DescribeInstanceTypesResponse"`
	Response
	InstanceTypeSet items[instanceTypeXML] `xml:"instanceTypeSet"`
	NextToken       string                 `xml:"nextToken,omitempty"`
}

// describeInstanceTypes lists the types (InstanceType.N narrows them),
// sorted by name.
func (f *Fake) describeInstanceTypes(r *Request) (any, error) {
	f.offers.init()
	f.offers.mu.Lock()
	want := r.List("InstanceType")
	var list []instanceTypeXML
	for _, name := range sortedKeys(f.offers.types) {
		if len(want) > 0 && !slices.Contains(want, name) {
			continue
		}
		t := f.offers.types[name]
		x := instanceTypeXML{InstanceType: t.Name, CurrentGeneration: true}
		x.SupportedUsageClasses.Items = []string{"on-demand"}
		if t.Spot {
			x.SupportedUsageClasses.Items = append(x.SupportedUsageClasses.Items, "spot")
		}
		x.ProcessorInfo.SupportedArchitectures.Items = []string{t.Arch}
		x.VCPUInfo.DefaultVCPUs = t.VCPUs
		x.MemoryInfo.SizeInMiB = t.MemoryMiB
		if t.GPU != nil {
			g := gpuDeviceXML{Name: t.GPU.Name, Manufacturer: t.GPU.Manufacturer, Count: t.GPU.Count}
			g.MemoryInfo.SizeInMiB = t.GPU.MemoryMiB
			x.GPUInfo = &gpuInfoXML{GPUs: items[gpuDeviceXML]{Items: []gpuDeviceXML{g}}, TotalGPUMemoryInMiB: t.GPU.MemoryMiB * int64(t.GPU.Count)}
		}
		list = append(list, x)
	}
	f.offers.mu.Unlock()
	for _, name := range want {
		if !slices.ContainsFunc(list, func(x instanceTypeXML) bool { return x.InstanceType == name }) {
			return nil, Errorf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", name)
		}
	}
	pg, next, err := page(r, list)
	if err != nil {
		return nil, err
	}
	return describeInstanceTypesResponse{Response: NewResponse(), InstanceTypeSet: items[instanceTypeXML]{Items: pg}, NextToken: next}, nil
}

type instanceTypeOfferingXML struct {
	InstanceType string `xml:"instanceType"`
	LocationType string `xml:"locationType"`
	Location     string `xml:"location"`
}

type describeInstanceTypeOfferingsResponse struct {
	XMLName xml.Name `xml:"DescribeInstanceTypeOfferingsResponse"`
	Response
	Set       items[instanceTypeOfferingXML] `xml:"instanceTypeOfferingSet"`
	NextToken string                         `xml:"nextToken,omitempty"`
}

// describeInstanceTypeOfferings lists where the request's region runs
// each type: per zone with LocationType availability-zone, else (region,
// EC2's default) once per type. Filters instance-type and location
// narrow it.
func (f *Fake) describeInstanceTypeOfferings(r *Request) (any, error) {
	f.offers.init()
	locType := cmpOr(r.Get("LocationType"), "region")
	if locType != "region" && locType != "availability-zone" {
		return nil, Errorf("InvalidParameterValue", "The location type %s is not supported by the fake.", locType)
	}
	filters := r.Filters()
	f.offers.mu.Lock()
	byType := f.offers.zones[r.Region]
	var list []instanceTypeOfferingXML
	for _, typ := range sortedKeys(byType) {
		if v := filters["instance-type"]; len(v) > 0 && !slices.ContainsFunc(v, func(p string) bool { return globMatch(p, typ) }) {
			continue
		}
		locations := byType[typ]
		if locType == "region" && len(locations) > 0 {
			locations = []string{r.Region}
		}
		for _, loc := range locations {
			if v := filters["location"]; len(v) > 0 && !slices.Contains(v, loc) {
				continue
			}
			list = append(list, instanceTypeOfferingXML{InstanceType: typ, LocationType: locType, Location: loc})
		}
	}
	f.offers.mu.Unlock()
	pg, next, err := page(r, list)
	if err != nil {
		return nil, err
	}
	return describeInstanceTypeOfferingsResponse{Response: NewResponse(), Set: items[instanceTypeOfferingXML]{Items: pg}, NextToken: next}, nil
}

type spotPriceXML struct {
	InstanceType       string `xml:"instanceType"`
	ProductDescription string `xml:"productDescription"`
	SpotPrice          string `xml:"spotPrice"`
	Timestamp          string `xml:"timestamp"`
	AvailabilityZone   string `xml:"availabilityZone"`
}

type describeSpotPriceHistoryResponse struct {
	XMLName xml.Name `xml:"DescribeSpotPriceHistoryResponse"`
	Response
	Set       items[spotPriceXML] `xml:"spotPriceHistorySet"`
	NextToken string              `xml:"nextToken,omitempty"`
}

// describeSpotPriceHistory answers the current spot price of each type
// in each zone of the region where it runs (one entry each, stamped now),
// for Linux/UNIX; InstanceType.N, AvailabilityZone and the filters
// instance-type, availability-zone and product-description narrow it.
func (f *Fake) describeSpotPriceHistory(r *Request) (any, error) {
	f.offers.init()
	filters := r.Filters()
	types := append(r.List("InstanceType"), filters["instance-type"]...)
	products := append(r.List("ProductDescription"), filters["product-description"]...)
	if len(products) > 0 && !slices.Contains(products, "Linux/UNIX") {
		return describeSpotPriceHistoryResponse{Response: NewResponse()}, nil
	}
	zone := r.Get("AvailabilityZone")
	now := f.now().UTC().Format("2006-01-02T15:04:05.000Z")
	f.offers.mu.Lock()
	var list []spotPriceXML
	for _, typ := range sortedKeys(f.offers.zones[r.Region]) {
		if len(types) > 0 && !slices.Contains(types, typ) {
			continue
		}
		for _, z := range f.offers.zones[r.Region][typ] {
			price, ok := f.offers.spot[z+"/"+typ]
			if !ok || (zone != "" && z != zone) || (len(filters["availability-zone"]) > 0 && !slices.Contains(filters["availability-zone"], z)) {
				continue
			}
			list = append(list, spotPriceXML{InstanceType: typ, ProductDescription: "Linux/UNIX",
				SpotPrice: strconv.FormatFloat(price, 'f', 6, 64), Timestamp: now, AvailabilityZone: z})
		}
	}
	f.offers.mu.Unlock()
	pg, next, err := page(r, list)
	if err != nil {
		return nil, err
	}
	return describeSpotPriceHistoryResponse{Response: NewResponse(), Set: items[spotPriceXML]{Items: pg}, NextToken: next}, nil
}

// pricingTarget prefixes the X-Amz-Target of the Price List API's calls.
const pricingTarget = "AWSPriceListService."

// servePricing answers the Price List API (JSON 1.1): GetProducts of
// AmazonEC2, filtered by TERM_MATCH on regionCode and instanceType (other
// filters, such as operatingSystem=Linux or tenancy=Shared, match what
// the fake lists: shared Linux without software), one product per type
// the region runs, in pages of at most 10.
func (f *Fake) servePricing(w http.ResponseWriter, hr *http.Request) {
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	action := strings.TrimPrefix(hr.Header.Get("X-Amz-Target"), pricingTarget)
	f.record(Call{Action: "pricing:" + action, Region: regionOf(hr), At: f.now()})
	if action != "GetProducts" {
		fail(http.StatusBadRequest, "UnknownOperationException", "the fake answers GetProducts only")
		return
	}
	var req struct {
		ServiceCode string
		Filters     []struct{ Type, Field, Value string }
		NextToken   string
		MaxResults  int
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		fail(http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf("reading the request: %v", err))
		return
	}
	if req.ServiceCode != "AmazonEC2" {
		fail(http.StatusNotFound, "NotFoundException", "the fake prices AmazonEC2 only")
		return
	}
	match := map[string]string{}
	for _, flt := range req.Filters {
		if flt.Type != "TERM_MATCH" {
			fail(http.StatusBadRequest, "InvalidParameterException", "filter type "+flt.Type)
			return
		}
		match[flt.Field] = flt.Value
	}
	fixed := map[string]string{"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
	for k, v := range fixed {
		if got, ok := match[k]; ok && got != v {
			_ = json.NewEncoder(w).Encode(map[string]any{"FormatVersion": "aws_v1", "PriceList": []string{}})
			return
		}
	}
	f.offers.init()
	f.offers.mu.Lock()
	var products []string
	for _, region := range sortedKeys(f.offers.zones) {
		if rc, ok := match["regionCode"]; ok && rc != region {
			continue
		}
		for _, typ := range sortedKeys(f.offers.zones[region]) {
			price, ok := f.offers.onDemand[region+"/"+typ]
			if it, ok2 := match["instanceType"]; !ok || len(f.offers.zones[region][typ]) == 0 || (ok2 && it != typ) {
				continue
			}
			products = append(products, priceListItem(region, typ, price))
		}
	}
	f.offers.mu.Unlock()
	start := 0
	if req.NextToken != "" {
		if start, err = strconv.Atoi(req.NextToken); err != nil || start < 0 || start > len(products) {
			fail(http.StatusBadRequest, "InvalidNextTokenException", "bad NextToken")
			return
		}
	}
	size := 10
	if req.MaxResults > 0 && req.MaxResults < size {
		size = req.MaxResults
	}
	end := min(start+size, len(products))
	out := map[string]any{"FormatVersion": "aws_v1", "PriceList": products[start:end]}
	if end < len(products) {
		out["NextToken"] = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// priceListItem is one product of the price list, in its aws_v1 shape: a
// JSON document (given to clients as a string) with the product's
// attributes and its on-demand term.
func priceListItem(region, typ string, price float64) string {
	sku := strings.ToUpper(fmt.Sprintf("%x", []byte(region+typ)))[:14]
	doc := map[string]any{
		"product": map[string]any{
			"productFamily": "Compute Instance",
			"sku":           sku,
			"attributes": map[string]string{
				"instanceType": typ, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
				"preInstalledSw": "NA", "capacitystatus": "Used", "servicecode": "AmazonEC2",
			},
		},
		"serviceCode": "AmazonEC2",
		"terms": map[string]any{
			"OnDemand": map[string]any{
				sku + ".JRTCKXETXF": map[string]any{
					"offerTermCode": "JRTCKXETXF", "sku": sku,
					"priceDimensions": map[string]any{
						sku + ".JRTCKXETXF.6YS6EN2CT7": map[string]any{
							"unit": "Hrs", "description": fmt.Sprintf("$%.4f per On Demand Linux %s Instance Hour", price, typ),
							"pricePerUnit": map[string]string{"USD": strconv.FormatFloat(price, 'f', 10, 64)},
						},
					},
				},
			},
		},
		"version":         "20260101000000",
		"publicationDate": "2026-01-01T00:00:00Z",
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
