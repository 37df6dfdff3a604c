// Package render shows plans to people and programs: text for the
// terminal, Markdown for a pull-request comment, and a JSON document.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dstackai/dstack-go/planner"
	"github.com/dstackai/dstack-go/providers/offers"
)

// Options tune the text rendering.
type Options struct {
	Color bool
	// Now is when the plan is shown, for the age of account offers
	// (time.Now when zero).
	Now time.Time
}

const (
	green   = "\x1b[32m"
	yellow  = "\x1b[33m"
	red     = "\x1b[31m"
	magenta = "\x1b[35m"
	cyan    = "\x1b[36m"
	bold    = "\x1b[1m"
	reset   = "\x1b[0m"
)

type painter bool

func (p painter) paint(color, s string) string {
	if !p {
		return s
	}
	return color + s + reset
}

// Symbol is the mark of an action in a diff.
func Symbol(a planner.Action) string {
	switch a {
	case planner.Create:
		return "+"
	case planner.Update, planner.Scale:
		return "~"
	case planner.Replace:
		return "-/+"
	case planner.Delete:
		return "-"
	case planner.Read:
		return "<="
	}
	return " "
}

func colorOf(a planner.Action) string {
	switch a {
	case planner.Create:
		return green
	case planner.Update, planner.Scale, planner.Read:
		return yellow
	case planner.Replace:
		return magenta
	case planner.Delete:
		return red
	}
	return ""
}

// Verb says what happens to an address, for the change's heading.
func Verb(a planner.Action) string {
	switch a {
	case planner.Create:
		return "provisioned"
	case planner.Update:
		return "updated in place"
	case planner.Scale:
		return "scaled"
	case planner.Replace:
		return "replaced"
	case planner.Delete:
		return "torn down"
	case planner.Read:
		return "read"
	}
	return "left as is"
}

// Value formats a field value: strings quoted, numbers and booleans bare,
// lists and objects as compact JSON.
func Value(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func fieldValue(v any, sensitive bool) string {
	if sensitive {
		return planner.Masked
	}
	return Value(v)
}

// Text writes the plan for a terminal.
func Text(w io.Writer, p *planner.Plan, opt Options) error {
	var b bytes.Buffer
	pt := painter(opt.Color)
	if len(p.Drift) > 0 {
		b.WriteString(pt.paint(bold, "Objects changed outside dstack") + "\n\n")
		b.WriteString("Refresh found these changes made outside dstack since the last apply:\n\n")
		for _, d := range p.Drift {
			fmt.Fprintf(&b, "  %s %s\n", pt.paint(yellow, "!"), d.Message)
		}
		b.WriteString("\n")
	}
	if p.Mode == planner.RefreshOnly {
		if len(p.Drift) == 0 {
			b.WriteString("No changes. The state matches what the providers report.\n")
		} else {
			fmt.Fprintf(&b, "Apply this plan to record %d %s in the state, making no other change.\n", len(p.Drift), plural(len(p.Drift), "drift"))
		}
		_, err := w.Write(b.Bytes())
		return err
	}
	if len(p.Changes) == 0 {
		b.WriteString(pt.paint(bold, "No changes.") + " Your infrastructure matches the configuration.\n")
		if len(p.Drift) > 0 {
			b.WriteString("\nApplying this plan records the changes found above in the state.\n")
		}
		writeNotes(&b, p, pt)
		_, err := w.Write(b.Bytes())
		return err
	}
	b.WriteString("dstack will perform the following actions:\n")
	for _, c := range p.Changes {
		b.WriteString("\n")
		writeChange(&b, p, c, pt)
	}
	b.WriteString("\n")
	b.WriteString(pt.paint(bold, p.Summarize().Line()) + "\n")
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	for _, line := range OfferAges(p, now) {
		b.WriteString(line + "\n")
	}
	writeNotes(&b, p, pt)
	_, err := w.Write(b.Bytes())
	return err
}

// OfferAges says, per backend, how old the offers the plan chose from
// are when they were read from the backend's account (a live, perhaps
// cached, offer: see offers.Offer.PricedAt): "Offers of aws were read
// from the account 12m ago." Catalog offers have no age and no line.
func OfferAges(p *planner.Plan, now time.Time) []string {
	oldest := map[string]time.Time{}
	note := func(o *offers.Offer) {
		if o == nil || o.PricedAt.IsZero() {
			return
		}
		if t, ok := oldest[o.Backend]; !ok || o.PricedAt.Before(t) {
			oldest[o.Backend] = o.PricedAt
		}
	}
	for _, s := range p.Steps {
		note(s.Offer)
		for i := range s.Candidates {
			note(&s.Candidates[i])
		}
	}
	var out []string
	for _, b := range slices.Sorted(maps.Keys(oldest)) {
		out = append(out, fmt.Sprintf("Offers of %s were read from the account %s.", b, Age(now.Sub(oldest[b]))))
	}
	return out
}

// Age says how long ago something was: "just now", "5m ago", "2h5m ago".
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	}
	return fmt.Sprintf("%dh%dm ago", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func writeChange(b *bytes.Buffer, p *planner.Plan, c *planner.Change, pt painter) {
	col := colorOf(c.Action)
	fmt.Fprintf(b, "  %s\n", pt.paint(bold, fmt.Sprintf("# %s will be %s", c.Address, Verb(c.Action))))
	if c.Reason != "" {
		fmt.Fprintf(b, "  # (%s)\n", c.Reason)
	}
	sym := Symbol(c.Action)
	name := c.Address[strings.IndexByte(c.Address, '.')+1:]
	fmt.Fprintf(b, "%s %s %q {\n", pt.paint(col, fmt.Sprintf("%3s", sym)), c.Kind, name)
	width := 0
	for _, f := range c.Fields {
		width = max(width, len(f.Field))
	}
	for _, f := range c.Fields {
		writeField(b, c, f, width, pt)
	}
	writeSteps(b, p, c, pt)
	b.WriteString("    }\n")
}

func writeField(b *bytes.Buffer, c *planner.Change, f planner.FieldChange, width int, pt painter) {
	pad := strings.Repeat(" ", width-len(f.Field))
	switch c.Action {
	case planner.Create, planner.Read:
		fmt.Fprintf(b, "      %s %s%s = %s\n", pt.paint(green, "+"), f.Field, pad, fieldValue(f.After, f.Sensitive))
	case planner.Delete:
		fmt.Fprintf(b, "      %s %s%s = %s\n", pt.paint(red, "-"), f.Field, pad, fieldValue(f.Before, f.Sensitive))
	default:
		sym, line := pt.paint(yellow, "~"), ""
		switch {
		case f.Before == nil && !f.Sensitive:
			sym, line = pt.paint(green, "+"), fieldValue(f.After, false)
		case f.After == nil && !f.Sensitive:
			sym, line = pt.paint(red, "-"), fieldValue(f.Before, false)+" → null"
		case f.Sensitive:
			line = "(sensitive value changed)"
		default:
			line = Value(f.Before) + " → " + Value(f.After)
		}
		note := ""
		if f.ForcesReplacement {
			note = pt.paint(red, " # forces replacement")
		}
		fmt.Fprintf(b, "      %s %s%s = %s%s\n", sym, f.Field, pad, line, note)
	}
}

// writeSteps lists the instance-level steps: what is made, on which
// offer or host, and what is removed.
func writeSteps(b *bytes.Buffer, p *planner.Plan, c *planner.Change, pt painter) {
	var lines []string
	for _, id := range c.Steps {
		s := p.Steps[id]
		inst := fmt.Sprintf("%s[%d]", s.Address, s.Index)
		switch s.Op {
		case planner.OpCreate:
			lines = append(lines, fmt.Sprintf("      %s %s %s", pt.paint(green, "+"), inst, describeCreate(s)))
		case planner.OpDelete:
			id := s.ProviderID
			if id == "" {
				id = "never created"
			}
			if s.Release != "" {
				lines = append(lines, fmt.Sprintf("      %s %s (%s) tear down its machine, keep the job's record: %s", pt.paint(red, "-"), inst, id, s.Release))
				continue
			}
			lines = append(lines, fmt.Sprintf("      %s %s (%s)", pt.paint(red, "-"), inst, id))
		case planner.OpStop:
			lines = append(lines, fmt.Sprintf("      %s %s stop (%s)", pt.paint(yellow, "~"), inst, s.ProviderID))
		case planner.OpAbandon:
			lines = append(lines, fmt.Sprintf("      %s %s abandon (%s): its host does not answer; removed once it does", pt.paint(yellow, "~"), inst, s.ProviderID))
		}
	}
	if len(lines) > 0 {
		b.WriteString("\n")
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
}

func describeCreate(s *planner.Step) string {
	var parts []string
	switch {
	case s.HostAddress != "":
		parts = append(parts, "on "+s.HostAddress)
	case s.Offer != nil && s.Offer.Given:
		// An SSH fleet's host: what it has is read from it at apply.
		parts = append(parts, fmt.Sprintf("SSH host %s (its GPUs, CPUs and memory are read at apply)", s.Offer.InstanceType))
	case s.Offer != nil:
		parts = append(parts, OfferLine(s.Offer))
		if len(s.Candidates) > 0 {
			var fb []string
			for _, o := range s.Candidates {
				fb = append(fb, fmt.Sprintf("%s %s %s $%.2f/h", o.Backend, place(o), o.InstanceType, o.PricePerHour))
			}
			parts = append(parts, "failover: "+strings.Join(fb, ", "))
		}
	case s.Backend != "":
		parts = append(parts, "on "+s.Backend)
	}
	parts = append(parts, "id = (known after apply)")
	return strings.Join(parts, "; ")
}

// OfferLine describes an offer in one line.
func OfferLine(o *offers.Offer) string {
	res := fmt.Sprintf("%dxCPU, %s", o.CPUs, o.Memory)
	if o.GPU != nil {
		res = fmt.Sprintf("%dx%s (%s), %s", o.GPU.Count, o.GPU.Name, o.GPU.MemoryMB, res)
	}
	spot := ""
	if o.Spot {
		spot = " spot"
	}
	return fmt.Sprintf("%s %s %s (%s)%s $%.2f/h", o.Backend, place(*o), o.InstanceType, res, spot, o.PricePerHour)
}

// place is where an offer runs: its zone (which names its region, as
// EC2's do) when it is for one, else its region.
func place(o offers.Offer) string {
	if o.Zone != "" {
		return o.Zone
	}
	return o.Region
}

func plural(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}

// writeNotes says where services are reached, how many replicas they
// have, and what the control loop does on its own.
func writeNotes(b *bytes.Buffer, p *planner.Plan, pt painter) {
	if len(p.Services) > 0 {
		b.WriteString("\n" + pt.paint(bold, "Services:") + "\n")
		for _, s := range p.Services {
			count := fmt.Sprintf("%d", s.Current)
			if s.Planned != s.Current {
				count = fmt.Sprintf("%d → %d", s.Current, s.Planned)
			}
			fmt.Fprintf(b, "  %s: %s (replicas %s: %s)\n", s.Address, s.URL, s.Replicas, count)
			if s.Model != "" {
				fmt.Fprintf(b, "    model %q: %s (OpenAI-compatible)\n", s.Model, s.ModelEndpoint)
			}
		}
	}
	if len(p.Loop) > 0 {
		b.WriteString("\n" + pt.paint(bold, "The control loop (dstack server) will, on its own:") + "\n")
		for _, l := range p.Loop {
			fmt.Fprintf(b, "  %s: %s\n", l.Address, strings.Join(l.Does, "; "))
		}
	}
}
