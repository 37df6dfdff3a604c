package lang

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/lang/resources"
)

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

func reflectValueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// FleetNodes is a fleet's size: an integer, a range "min..max", or a
// mapping {min, target, max}. Target is where the fleet starts.
type FleetNodes struct {
	Min    int  `json:"min,omitempty" jsonschema_description:"Fewest instances"`
	Target *int `json:"target,omitempty" jsonschema_description:"Instances the fleet starts with"`
	// Max is nil for no upper bound.
	Max *int `json:"max,omitempty" jsonschema_description:"Most instances; no limit when unset"`
}

type fleetNodesMapping FleetNodes

// DecodeNode accepts the three forms.
func (f *FleetNodes) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		r, err := resources.ParseIntRange(n.Text)
		if err != nil || (n.Type != Int && n.Type != String) {
			detail := fmt.Sprintf("Expected a number of nodes, \"min..max\" or a mapping {min, target, max}, got %q.", n.Text)
			if err != nil && strings.Contains(n.Text, "..") {
				detail = capitalize(err.Error()) + "." // the form is right, a bound is not
			}
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "%s", detail)
			return
		}
		*f = FleetNodes{Max: r.Max}
		if r.Min != nil {
			f.Min = *r.Min
		}
	case MapNode:
		dec.DecodeFields(n, f, path)
	default:
		dec.typeError(n, reflectTypeOf[FleetNodes](), path)
		return
	}
	switch {
	case f.Min < 0:
		dec.Errorf(n.Range, path, "Invalid fleet size", "min must not be negative.")
	case f.Max != nil && *f.Max < f.Min:
		dec.Errorf(n.Range, path, "Invalid fleet size", "max (%d) is below min (%d).", *f.Max, f.Min)
	case f.Target != nil && (*f.Target < f.Min || (f.Max != nil && *f.Target > *f.Max)):
		dec.Errorf(n.Range, path, "Invalid fleet size", "target (%d) must lie between min and max.", *f.Target)
	}
}

// DescribeType implements Describer.
func (FleetNodes) DescribeType() string { return `a number of nodes, "min..max" or {min, target, max}` }

// Initial is the number of nodes the fleet is created with.
func (f FleetNodes) Initial() int {
	if f.Target != nil {
		return *f.Target
	}
	return f.Min
}

// Blocks splits an instance into slices that runs share: a number, or
// "auto" for one block per GPU.
type Blocks struct {
	Auto  bool
	Count int
}

// DecodeNode accepts an integer or "auto".
func (b *Blocks) DecodeNode(dec *Decoder, n *Node, path string) {
	if n.Kind == ScalarNode {
		if n.Type == String && n.Text == "auto" {
			*b = Blocks{Auto: true}
			return
		}
		if i, err := strconv.Atoi(n.Text); err == nil && n.Type == Int && i >= 1 {
			*b = Blocks{Count: i}
			return
		}
	}
	dec.Errorf(n.Range, path, fmt.Sprintf("Invalid value for %q", path), "Expected a positive number of blocks or \"auto\", got %s.", n.describe())
}

// DescribeType implements Describer.
func (Blocks) DescribeType() string { return `a number of blocks or "auto"` }

// MarshalJSON renders "auto" or the count.
func (b Blocks) MarshalJSON() ([]byte, error) {
	if b.Auto {
		return []byte(`"auto"`), nil
	}
	return json.Marshal(b.Count)
}

// GatewayRef says which gateway serves a service: true (the default
// gateway), false (none: served through the server), or a gateway name.
type GatewayRef struct {
	Enabled bool
	Name    string
	// Project is set for a gateway of another project ("team/gw" or
	// {project, name}).
	Project string
}

type gatewayRefMapping struct {
	Project string `json:"project,omitempty" jsonschema_description:"Project of the gateway; this project when unset"`
	Name    string `json:"name" jsonschema:"required" jsonschema_description:"The gateway's name"`
}

// DecodeNode accepts a bool, a name, "project/name", or {project, name}.
func (g *GatewayRef) DecodeNode(dec *Decoder, n *Node, path string) {
	var project, name string
	switch {
	case n.Kind == ScalarNode && n.Type == Bool:
		*g = GatewayRef{Enabled: n.Text == "true"}
		return
	case n.Kind == ScalarNode:
		project, name = ProjectName(n.Text)
	case n.Kind == MapNode:
		var m gatewayRefMapping
		dec.DecodeFields(n, &m, path)
		project, name = m.Project, m.Name
	default:
		dec.typeError(n, reflectTypeOf[GatewayRef](), path)
		return
	}
	if !ValidName(name) || (project != "" && !ValidName(project)) {
		dec.Errorf(n.Range, path, fmt.Sprintf("Invalid gateway name %q", n.Text), "Gateway names are lower-case letters, digits and dashes, starting with a letter; a gateway of another project is written project/name.")
		return
	}
	*g = GatewayRef{Enabled: true, Name: name, Project: project}
}

// DescribeType implements Describer.
func (GatewayRef) DescribeType() string { return "a bool, a gateway name, or {project, name}" }

// MarshalJSON renders the name or the bool.
func (g GatewayRef) MarshalJSON() ([]byte, error) {
	if g.Project != "" {
		return json.Marshal(g.Project + "/" + g.Name)
	}
	if g.Name != "" {
		return json.Marshal(g.Name)
	}
	return json.Marshal(g.Enabled)
}

// Model publishes a service as a model on the gateway's OpenAI-compatible
// endpoint. Written as the model name or a mapping.
type Model struct {
	Type   string `json:"type,omitempty" jsonschema:"enum=chat" jsonschema_description:"The kind of model"`
	Name   string `json:"name" jsonschema:"required" jsonschema_description:"The model's name, as clients request it"`
	Format string `json:"format,omitempty" jsonschema:"enum=openai,enum=tgi" jsonschema_description:"The API the model's server speaks"`
	Prefix string `json:"prefix,omitempty" jsonschema_description:"Path prefix of the model server's API"`
	// ChatTemplate and EOSToken apply to the tgi format.
	ChatTemplate string `json:"chat_template,omitempty" jsonschema_description:"Chat template (tgi format)"`
	EOSToken     string `json:"eos_token,omitempty" jsonschema_description:"End-of-sequence token (tgi format)"`
}

type modelMapping Model

// DecodeNode accepts a name or the mapping.
func (m *Model) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		if n.Type != String || n.Text == "" {
			dec.typeError(n, reflectTypeOf[Model](), path)
			return
		}
		*m = Model{Type: "chat", Name: n.Text, Format: "openai"}
	case MapNode:
		dec.DecodeFields(n, m, path)
		if m.Type == "" {
			m.Type = "chat"
		}
		if m.Format == "" {
			m.Format = "openai"
		}
	default:
		dec.typeError(n, reflectTypeOf[Model](), path)
	}
}

// DescribeType implements Describer.
func (Model) DescribeType() string { return "a model name or a mapping" }

type sshHostMapping SSHHost

// DecodeNode accepts a hostname (optionally user@host:port) or a mapping.
func (h *SSHHost) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		if n.Type != String || n.Text == "" {
			dec.typeError(n, reflectTypeOf[SSHHost](), path)
			return
		}
		user, host, port, err := splitUserHostPort(n.Text)
		if err != nil {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid host %q", n.Text), "%s.", capitalize(err.Error()))
			return
		}
		*h = SSHHost{Hostname: host, User: user, Port: port}
	case MapNode:
		dec.DecodeFields(n, h, path)
	default:
		dec.typeError(n, reflectTypeOf[SSHHost](), path)
	}
}

// DescribeType implements Describer.
func (SSHHost) DescribeType() string { return "a hostname or a mapping" }

type proxyJumpMapping ProxyJump

// DecodeNode accepts "[user@]host[:port]" or a mapping.
func (p *ProxyJump) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		user, host, port, err := splitUserHostPort(n.Text)
		if err != nil {
			dec.Errorf(n.Range, path, fmt.Sprintf("Invalid proxy_jump %q", n.Text), "%s.", capitalize(err.Error()))
			return
		}
		*p = ProxyJump{Hostname: host, User: user, Port: port}
	case MapNode:
		dec.DecodeFields(n, p, path)
	default:
		dec.typeError(n, reflectTypeOf[ProxyJump](), path)
	}
}

// DescribeType implements Describer.
func (ProxyJump) DescribeType() string { return `"[user@]host[:port]" or a mapping` }

func splitUserHostPort(s string) (user, host string, port int, err error) {
	if u, rest, ok := strings.Cut(s, "@"); ok {
		user, s = u, rest
	}
	host = s
	if h, p, ok := strings.Cut(s, ":"); ok && !strings.Contains(p, ":") {
		host = h
		port, err = parsePortNumber(p)
		if err != nil {
			return "", "", 0, err
		}
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", "", 0, fmt.Errorf("%q is not a host name or address", host)
	}
	return user, host, port, nil
}

// HTTPS says whether the gateway serves a service over HTTPS: true, false,
// or "auto" (HTTPS when the gateway has a domain and certificate).
type HTTPS struct {
	Auto    bool
	Enabled bool
}

// DecodeNode accepts a bool or "auto".
func (h *HTTPS) DecodeNode(dec *Decoder, n *Node, path string) {
	switch {
	case n.Kind == ScalarNode && n.Type == Bool:
		*h = HTTPS{Enabled: n.Text == "true"}
	case n.Kind == ScalarNode && n.Type == String && n.Text == "auto":
		*h = HTTPS{Auto: true}
	default:
		dec.typeError(n, reflectTypeOf[HTTPS](), path)
	}
}

// DescribeType implements Describer.
func (HTTPS) DescribeType() string { return `true, false or "auto"` }

// MarshalJSON renders "auto" or the bool.
func (h HTTPS) MarshalJSON() ([]byte, error) {
	if h.Auto {
		return []byte(`"auto"`), nil
	}
	return json.Marshal(h.Enabled)
}

// Replicas is a service's replica count: a number or range ("1..4"), or a
// list of replica groups that run different commands or hardware (for
// example prefill and decode workers).
type Replicas struct {
	Range  *resources.IntRange
	Groups []ReplicaGroup
}

// ReplicaGroup is one kind of replica of a service.
type ReplicaGroup struct {
	Name        string              `json:"name,omitempty" jsonschema_description:"The group's name"`
	Count       *resources.IntRange `json:"count,omitempty" jsonschema_description:"Number of replicas, or a range scaling moves within"`
	Scaling     *Scaling            `json:"scaling,omitempty" jsonschema_description:"How the group's replicas follow a metric"`
	Resources   *resources.Spec     `json:"resources,omitempty" jsonschema_description:"Resources each replica of the group needs"`
	SpotPolicy  string              `json:"spot_policy,omitempty" jsonschema:"enum=spot,enum=on-demand,enum=auto" jsonschema_description:"Use spot or on-demand instances; auto takes either"`
	Reservation string              `json:"reservation,omitempty" jsonschema_description:"Capacity reservation to provision from"`
	Commands    []string            `json:"commands,omitempty" jsonschema_description:"Shell commands that start the group's replicas"`
	Image       string              `json:"image,omitempty" jsonschema_description:"Docker image of the group's replicas"`
	Python      string              `json:"python,omitempty" jsonschema:"enum=3.9,enum=3.10,enum=3.11,enum=3.12,enum=3.13,enum=3.14" jsonschema_description:"Python version of dstack's base image; used when no image is given"`
	Nvcc        bool                `json:"nvcc,omitempty" jsonschema_description:"Use an image with the CUDA compiler (nvcc)"`
	Docker      bool                `json:"docker,omitempty" jsonschema_description:"Run Docker inside the container (docker-in-docker)"`
	Privileged  bool                `json:"privileged,omitempty" jsonschema_description:"Run the container in privileged mode"`
	Router      *ReplicaRouter      `json:"router,omitempty" jsonschema_description:"Make this group the router of the others"`
}

// ReplicaRouter marks a replica group as the router of the others.
type ReplicaRouter struct {
	Type string `json:"type" jsonschema:"required,enum=sglang,enum=dynamo" jsonschema_description:"The kind of router"`
}

// DecodeNode accepts a count, a range, or a list of groups.
func (r *Replicas) DecodeNode(dec *Decoder, n *Node, path string) {
	switch n.Kind {
	case ScalarNode:
		r.Range = new(resources.IntRange)
		dec.decode(n, reflectValueOf(r.Range), path)
	case MapNode:
		r.Range = new(resources.IntRange)
		dec.decode(n, reflectValueOf(r.Range), path)
	case ListNode:
		dec.decode(n, reflectValueOf(&r.Groups), path)
	default:
		dec.typeError(n, reflectTypeOf[Replicas](), path)
	}
}

// DescribeType implements Describer.
func (Replicas) DescribeType() string {
	return `a number of replicas, a range ("1..4"), or a list of replica groups`
}

// MarshalJSON renders the range or the groups.
func (r Replicas) MarshalJSON() ([]byte, error) {
	if r.Groups != nil {
		return json.Marshal(r.Groups)
	}
	return json.Marshal(r.Range)
}

type instanceRefMapping InstanceRef

// DecodeNode accepts an instance name or a mapping.
func (i *InstanceRef) DecodeNode(dec *Decoder, n *Node, path string) {
	switch {
	case n.Kind == ScalarNode && n.Type == String && n.Text != "":
		*i = InstanceRef{Name: n.Text}
	case n.Kind == MapNode:
		dec.DecodeFields(n, i, path)
		set := 0
		for _, s := range []string{i.Name, i.Hostname, i.Fleet} {
			if s != "" {
				set++
			}
		}
		if set != 1 || (i.Instance != nil && i.Fleet == "") {
			dec.Errorf(n.Range, path, "Invalid instance", "Give one of name, hostname, or fleet with instance.")
		}
	default:
		dec.typeError(n, reflectTypeOf[InstanceRef](), path)
	}
}

// DescribeType implements Describer.
func (InstanceRef) DescribeType() string { return "an instance name or a mapping" }

// ProjectName splits a reference to a resource of another project,
// "project/name", into its parts; a plain name has no project.
func ProjectName(s string) (project, name string) {
	if p, n, ok := strings.Cut(s, "/"); ok {
		return p, n
	}
	return "", s
}
