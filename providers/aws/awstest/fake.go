// Package awstest is a fake of the Amazon EC2 API for dstack's tests and
// demos: an HTTP server that answers the EC2 Query API (form-encoded
// Action=... requests, XML responses in the shapes of AWS's API
// reference), so that the real AWS SDK, pointed at it with
// AWS_ENDPOINT_URL_EC2, drives it as it drives EC2.
//
// It keeps instances, volumes, security groups, placement groups, VPCs,
// subnets and images per region (the region is read from the request's
// SigV4 credential scope). RunInstances boots a machine from [Machines]:
// with [SSHMachines], a real SSH host (package sshtest) that accepts the
// keys the instance's user-data delivers, as cloud-init would.
//
// Errors can be injected per action ([Fake.Inject]), in EC2's error
// shape and status, so that tests see what the SDK sees when EC2 has no
// capacity, a quota is reached or calls are throttled.
//
// More actions are added with [Fake.Handle]: a handler receives the
// request's parameters and returns a value that encodes as the action's
// XML response.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is the XML namespace of EC2's responses.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// DefaultRegion is where requests without a credential scope go.
const DefaultRegion = "us-east-1"

// Request is one call of the Query API.
type Request struct {
	Action string
	Region string
	Params url.Values
}

// Get returns a parameter's value ("InstanceType", "Placement.GroupName").
func (r *Request) Get(name string) string { return r.Params.Get(name) }

// List returns the values of a flattened list parameter: prefix.1,
// prefix.2, ... ("InstanceId" gives InstanceId.1, InstanceId.2, ...).
func (r *Request) List(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := r.Params[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

// Count returns how many members a list of structures has: the largest
// N for which a parameter prefix.N.* is present.
func (r *Request) Count(prefix string) int {
	n := 0
	for k := range r.Params {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(num); err == nil && i > n {
			n = i
		}
	}
	return n
}

// Filters returns the request's Filter.N.Name / Filter.N.Value.M pairs.
func (r *Request) Filters() map[string][]string {
	out := map[string][]string{}
	for i := 1; i <= r.Count("Filter"); i++ {
		p := "Filter." + strconv.Itoa(i)
		name := r.Get(p + ".Name")
		out[name] = append(out[name], r.List(p+".Value")...)
	}
	return out
}

// Tags returns the tags of the request's TagSpecification.N of resource
// type typ.
func (r *Request) Tags(typ string) map[string]string {
	out := map[string]string{}
	for i := 1; i <= r.Count("TagSpecification"); i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		if r.Get(p+".ResourceType") != typ {
			continue
		}
		for j := 1; j <= r.Count(p+".Tag"); j++ {
			q := p + ".Tag." + strconv.Itoa(j)
			out[r.Get(q+".Key")] = r.Get(q + ".Value")
		}
	}
	return out
}

// Handler answers one action: a value that encodes as its XML response
// (its root element named <Action>Response, see [Response]), or an error
// (an *APIError becomes EC2's error document).
type Handler func(r *Request) (any, error)

// APIError is an error in EC2's shape: a code ("InsufficientInstanceCapacity"),
// a message, and the HTTP status EC2 answers with.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an APIError with the status EC2 gives code.
func Errorf(code, format string, args ...any) *APIError {
	return &APIError{Status: StatusOf(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

// StatusOf is the HTTP status EC2 answers an error code with: server
// errors (no capacity, throttling, internal errors) are 5xx, the
// authentication errors 401/403, the rest 400.
func StatusOf(code string) int {
	switch code {
	case "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
		"InsufficientCapacity", "InternalError", "Unavailable":
		return http.StatusInternalServerError
	case "RequestLimitExceeded", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "AuthFailure":
		return http.StatusUnauthorized
	case "UnauthorizedOperation", "Blocked":
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// Fake is the fake EC2 service. It is safe for concurrent use.
type Fake struct {
	machines Machines
	now      func() time.Time
	account  string
	diskDir  string

	mu       sync.Mutex
	handlers map[string]Handler
	inject   map[string][]*APIError // action → errors for its next calls
	calls    []Call
	regions  map[string]*region
	seq      int
	// consoleRewrite, when set, changes what GetConsoleOutput shows.
	consoleRewrite func(instanceID, text string) string
	// BootDelay is how long an instance stays pending before its machine
	// boots (zero: at once).
	bootDelay time.Duration
	// offers is what the account can launch, and at what prices (see
	// offers.go).
	offers offerData
}

// Call records one request the fake answered.
type Call struct {
	Action string
	Region string
	Params url.Values
	At     time.Time
	// Error is the error code it answered with, or "".
	Error string
}

// Options configure a Fake.
type Options struct {
	// Machines boots instances' machines; nil boots none (instances run
	// with documentation addresses and nothing listens there).
	Machines Machines
	// BootDelay keeps new instances pending for this long.
	BootDelay time.Duration
	// Account is the owner ID the fake reports; default 123456789012.
	Account string
	// DiskDir, when set, keeps each volume's data in a sparse file of its
	// size there, attached to a [DiskMachine] as a block device; empty:
	// volumes hold no data and attaching is bookkeeping only.
	DiskDir string
}

// New returns a fake with a default VPC, subnets in three zones and a Deep
// Learning AMI per architecture in every region.
func New(opts Options) *Fake {
	f := &Fake{machines: opts.Machines, now: time.Now, account: opts.Account, bootDelay: opts.BootDelay, diskDir: opts.DiskDir,
		handlers: map[string]Handler{}, inject: map[string][]*APIError{}, regions: map[string]*region{}}
	if f.account == "" {
		f.account = "123456789012"
	}
	f.registerCompute()
	f.registerNetwork()
	f.registerVolumes()
	f.registerOffers()
	return f
}

// Handle registers (or replaces) the handler of an action.
func (f *Fake) Handle(action string, h Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[action] = h
}

// Actions returns the actions the fake answers, sorted.
func (f *Fake) Actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.handlers))
	for a := range f.handlers {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Inject makes the next n calls of action fail with code (and EC2's
// status for it) instead of being answered.
func (f *Fake) Inject(action, code string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.inject[action] = append(f.inject[action], Errorf(code, "injected by the fake: %s", code))
	}
}

// Calls returns the requests answered so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	if strings.HasPrefix(hr.Header.Get("X-Amz-Target"), pricingTarget) {
		f.servePricing(w, hr) // the Price List API, at the same address
		return
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, 16<<20))
	if err != nil {
		writeError(w, &APIError{Status: http.StatusBadRequest, Code: "MalformedQueryString", Message: err.Error()})
		return
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		writeError(w, &APIError{Status: http.StatusBadRequest, Code: "MalformedQueryString", Message: err.Error()})
		return
	}
	for k, v := range hr.URL.Query() {
		params[k] = append(params[k], v...)
	}
	r := &Request{Action: params.Get("Action"), Region: regionOf(hr), Params: params}
	resp, err := f.serve(r)
	call := Call{Action: r.Action, Region: r.Region, Params: params, At: f.now()}
	if err != nil {
		ae, ok := err.(*APIError)
		if !ok {
			ae = &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error()}
		}
		call.Error = ae.Code
		f.record(call)
		writeError(w, ae)
		return
	}
	f.record(call)
	out, err := xml.Marshal(resp)
	if err != nil {
		writeError(w, &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func (f *Fake) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *Fake) serve(r *Request) (any, error) {
	f.mu.Lock()
	h := f.handlers[r.Action]
	var injected *APIError
	if q := f.inject[r.Action]; len(q) > 0 {
		injected, f.inject[r.Action] = q[0], q[1:]
	}
	f.mu.Unlock()
	if r.Action == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "MissingAction", Message: "no Action parameter"}
	}
	if h == nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidAction",
			Message: fmt.Sprintf("The action %s is not valid for this web service.", r.Action)}
	}
	if injected != nil {
		return nil, injected
	}
	if r.Get("DryRun") == "true" {
		return nil, &APIError{Status: http.StatusPreconditionFailed, Code: "DryRunOperation",
			Message: "Request would have succeeded, but DryRun flag is set."}
	}
	return h(r)
}

var credentialScope = regexp.MustCompile(`Credential=[^/]+/\d{8}/([a-z0-9-]+)/ec2/aws4_request`)

// regionOf reads the region from the request's SigV4 signature.
func regionOf(r *http.Request) string {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return DefaultRegion
}

// errorResponse is EC2's error document.
type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []apiErr `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type apiErr struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, e *APIError) {
	b, _ := xml.Marshal(errorResponse{Errors: []apiErr{{Code: e.Code, Message: e.Message}}, RequestID: requestID()})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	status := e.Status
	if status == 0 {
		status = StatusOf(e.Code)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// Response is the common head of every response: embed it in a
// handler's response type, and name the type's root element:
//
//	type fooResponse struct {
//		XMLName xml.Name `xml:"FooResponse"`
//		awstest.Response
//		...
//	}
type Response struct {
	XMLNS     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
}

// NewResponse returns a Response with the namespace and a fresh request ID.
func NewResponse() Response { return Response{XMLNS: Namespace, RequestID: requestID()} }

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newID returns an EC2 style ID: prefix-17 hex digits.
func newID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)[:17]
}

// returnResponse answers actions whose response is <return>true</return>.
type returnResponse struct {
	XMLName xml.Name
	Response
	Return bool `xml:"return"`
}

func returnTrue(action string) returnResponse {
	return returnResponse{XMLName: xml.Name{Local: action + "Response"}, Response: NewResponse(), Return: true}
}

// tag is an item of a tagSet.
type tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(m map[string]string) []tag {
	out := make([]tag, 0, len(m))
	for k, v := range m {
		out = append(out, tag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// matchTags reports whether tags pass the tag:KEY, tag-key filters.
func matchTags(tags map[string]string, filters map[string][]string) bool {
	for name, values := range filters {
		if k, ok := strings.CutPrefix(name, "tag:"); ok {
			v, has := tags[k]
			if !has || !contains(values, v) {
				return false
			}
		}
		if name == "tag-key" {
			found := false
			for _, k := range values {
				if _, ok := tags[k]; ok {
					found = true
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// matchField reports whether a value passes a filter on one field: no
// filter of that name, or one of its values.
func matchField(filters map[string][]string, name, value string) bool {
	values, ok := filters[name]
	return !ok || contains(values, value)
}
