package awstest

import (
	"encoding/xml"
	"fmt"
	"time"
)

// reservation is a capacity reservation, or a capacity block.
type reservation struct {
	ID, Zone, Type string
	Total, Used    int
	Block          bool
}

// AddCapacityReservation adds a capacity reservation (a capacity block
// when block) of count instances of typ in zone, and returns its ID.
func (f *Fake) AddCapacityReservation(region, zone, typ string, count int, block bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(region)
	if reg.reservations == nil {
		reg.reservations = map[string]*reservation{}
	}
	r := &reservation{ID: newID("cr"), Zone: zone, Type: typ, Total: count, Block: block}
	reg.reservations[r.ID] = r
	return r.ID
}

type capacityReservationXML struct {
	CapacityReservationID  string `xml:"capacityReservationId"`
	OwnerID                string `xml:"ownerId"`
	CapacityReservationArn string `xml:"capacityReservationArn"`
	AvailabilityZone       string `xml:"availabilityZone"`
	InstanceType           string `xml:"instanceType"`
	InstancePlatform       string `xml:"instancePlatform"`
	Tenancy                string `xml:"tenancy"`
	TotalInstanceCount     int    `xml:"totalInstanceCount"`
	AvailableInstanceCount int    `xml:"availableInstanceCount"`
	State                  string `xml:"state"`
	StartDate              string `xml:"startDate"`
	EndDateType            string `xml:"endDateType"`
	InstanceMatchCriteria  string `xml:"instanceMatchCriteria"`
	ReservationType        string `xml:"reservationType"`
}

type describeCapacityReservationsResponse struct {
	XMLName xml.Name `xml:"DescribeCapacityReservationsResponse"`
	Response
	Reservations []capacityReservationXML `xml:"capacityReservationSet>item"`
}

func (f *Fake) describeCapacityReservations(r *Request) (any, error) {
	ids := r.List("CapacityReservationId")
	f.mu.Lock()
	defer f.mu.Unlock()
	reg := f.regionLocked(r.Region)
	resp := describeCapacityReservationsResponse{Response: NewResponse()}
	for _, id := range ids {
		if reg.reservations[id] == nil {
			return nil, Errorf("InvalidCapacityReservationId.NotFound", "The capacity reservation ID '%s' does not exist", id)
		}
	}
	for _, c := range reg.reservations {
		if len(ids) > 0 && !contains(ids, c.ID) {
			continue
		}
		typ := "default"
		if c.Block {
			typ = "capacity-block"
		}
		resp.Reservations = append(resp.Reservations, capacityReservationXML{CapacityReservationID: c.ID, OwnerID: f.account,
			CapacityReservationArn: fmt.Sprintf("arn:aws:ec2:%s:%s:capacity-reservation/%s", reg.name, f.account, c.ID),
			AvailabilityZone:       c.Zone, InstanceType: c.Type, InstancePlatform: "Linux/UNIX", Tenancy: "default",
			TotalInstanceCount: c.Total, AvailableInstanceCount: c.Total - c.Used, State: "active",
			StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02T15:04:05.000Z"), EndDateType: "unlimited",
			InstanceMatchCriteria: "targeted", ReservationType: typ})
	}
	return resp, nil
}

// takeReservation checks a launch into reservation id and takes one of
// its instances. f.mu is held.
func (reg *region) takeReservation(id, typ, zone, market string) error {
	c := reg.reservations[id]
	switch {
	case c == nil:
		return Errorf("InvalidCapacityReservationId.NotFound", "The capacity reservation ID '%s' does not exist", id)
	case c.Type != typ || (zone != "" && c.Zone != zone):
		return Errorf("InvalidParameterValue", "capacity reservation %s is for %s in %s, not %s in %s", id, c.Type, c.Zone, typ, zone)
	case c.Block && market != "capacity-block":
		return Errorf("InvalidParameterCombination", "a capacity block is launched with InstanceMarketOptions.MarketType capacity-block")
	case !c.Block && market != "":
		return Errorf("InvalidParameterCombination", "a capacity reservation is for on-demand instances")
	case c.Used >= c.Total:
		return Errorf("ReservationCapacityExceeded", "The requested reservation does not have sufficient compatible and available capacity for this request.")
	}
	c.Used++
	return nil
}
