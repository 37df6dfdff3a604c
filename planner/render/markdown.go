package render

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/dstackai/dstack-go/planner"
)

// MarkdownLimit is the most a pull-request comment may hold (GitHub's
// limit is 65,536 characters); Markdown stays under it.
const MarkdownLimit = 65000

// Markdown writes the plan for a pull-request comment: the summary line
// and a table of the changes first, then each change's details folded.
// Whatever would pass MarkdownLimit is left out, with a note saying how
// many changes are not shown.
func Markdown(w io.Writer, p *planner.Plan) error {
	var b bytes.Buffer
	s := p.Summarize()
	fmt.Fprintf(&b, "### dstack plan\n\n**%s**\n\n", mdEscape(s.Line()))
	if len(p.Drift) > 0 {
		fmt.Fprintf(&b, "<details><summary>%d %s found outside dstack</summary>\n\n", len(p.Drift), plural(len(p.Drift), "change"))
		for _, d := range p.Drift {
			fmt.Fprintf(&b, "- %s\n", mdEscape(d.Message))
		}
		b.WriteString("\n</details>\n\n")
	}
	if len(p.Changes) == 0 {
		b.WriteString("No changes. Your infrastructure matches the configuration.\n")
		mdNotes(&b, p)
		_, err := w.Write(b.Bytes())
		return err
	}
	var table, details bytes.Buffer
	table.WriteString("| | Address | Action | Instances | Cost/h | Why |\n|---|---|---|---|---|---|\n")
	footer := "\n_%d more changes are not shown here; run `dstack show` on the saved plan for all of them._\n"
	shownRows, shownDetails := 0, 0
	budget := MarkdownLimit - b.Len() - len(footer) - 64
	for _, c := range p.Changes {
		row := fmt.Sprintf("| `%s` | `%s` | %s | %d → %d | %s | %s |\n", Symbol(c.Action), c.Address, c.Action,
			c.InstancesBefore, c.InstancesAfter, costCell(c), mdEscape(c.Reason))
		if table.Len()+len(row) > budget/2 {
			break
		}
		table.WriteString(row)
		shownRows++
	}
	for _, c := range p.Changes[:shownRows] {
		var one bytes.Buffer
		writeChange(&one, p, c, false)
		block := fmt.Sprintf("<details><summary><code>%s</code> %s</summary>\n\n```diff\n%s```\n\n</details>\n",
			c.Address, Verb(c.Action), diffMarks(one.String()))
		if table.Len()+details.Len()+len(block) > budget {
			break
		}
		details.WriteString(block)
		shownDetails++
	}
	b.Write(table.Bytes())
	b.WriteString("\n")
	b.Write(details.Bytes())
	if hidden := len(p.Changes) - min(shownRows, shownDetails); hidden > 0 {
		fmt.Fprintf(&b, footer, hidden)
	}
	mdNotes(&b, p)
	_, err := w.Write(b.Bytes())
	return err
}

func costCell(c *planner.Change) string {
	d := c.CostAfter - c.CostBefore
	switch {
	case d > 0:
		return fmt.Sprintf("+$%.2f", d)
	case d < 0:
		return fmt.Sprintf("-$%.2f", -d)
	}
	return "—"
}

// diffMarks moves each line's mark to the first column, so GitHub
// colours additions green and removals red in a diff block; changes in
// place and replacements get "!", which it leaves uncoloured.
func diffMarks(s string) string {
	var out strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		t := strings.TrimLeft(line, " ")
		indent := len(line) - len(t)
		mark := ""
		switch {
		case strings.HasPrefix(t, "-/+ "):
			mark = "!"
		case strings.HasPrefix(t, "+ "), strings.HasPrefix(t, "- "):
			mark = t[:1]
		case strings.HasPrefix(t, "~ "):
			mark = "!"
		}
		switch {
		case mark == "":
			out.WriteString(line)
		case indent == 0:
			out.WriteString(mark + line)
		default:
			out.WriteString(mark + line[1:])
		}
	}
	return out.String()
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;", "\n", " ")
	return r.Replace(s)
}

// mdNotes adds the services and the control loop's duties, as the text
// rendering lists them, when they fit.
func mdNotes(b *bytes.Buffer, p *planner.Plan) {
	var n bytes.Buffer
	writeNotes(&n, p, false)
	if n.Len() == 0 || b.Len()+n.Len()+16 > MarkdownLimit {
		return
	}
	b.WriteString("\n```\n" + strings.TrimPrefix(n.String(), "\n") + "```\n")
}
