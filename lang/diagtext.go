package lang

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// TextOptions controls how diagnostics are written for people.
type TextOptions struct {
	// Color turns on ANSI colours; callers set it only on a terminal and
	// when NO_COLOR is unset.
	Color bool
	// Width wraps detail text; 0 means 78 columns.
	Width int
}

const (
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// WriteText writes each diagnostic the way HCL and Terraform do: the
// severity and summary, the place, the source line with the subject
// underlined by carets, then the detail.
func WriteText(w io.Writer, diags Diagnostics, sources map[string][]byte, opts TextOptions) error {
	width := opts.Width
	if width <= 0 {
		width = 78
	}
	var b bytes.Buffer
	for _, d := range diags {
		sev, color := "Error", ansiRed
		if d.Severity == Warning {
			sev, color = "Warning", ansiYellow
		}
		if opts.Color {
			fmt.Fprintf(&b, "%s%s%s: %s%s\n", ansiBold, color, sev, d.Summary, ansiReset)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", sev, d.Summary)
		}
		if d.Subject != nil {
			r := d.Subject
			fmt.Fprintf(&b, "\n  on %s line %d, column %d", r.Filename, r.Start.Line, r.Start.Column)
			if d.Field != "" {
				fmt.Fprintf(&b, ", in %s", d.Field)
			}
			b.WriteString(":\n")
			if line, ok := sourceLine(sources[r.Filename], r.Start); ok {
				gutter := fmt.Sprintf("%5d | ", r.Start.Line)
				fmt.Fprintf(&b, "%s%s\n", gutter, line)
				startCol := r.Start.Column - 1
				n := 1
				if r.End.Line == r.Start.Line && r.End.Column > r.Start.Column {
					n = r.End.Column - r.Start.Column
				} else if r.End.Line > r.Start.Line {
					n = max(utf8.RuneCountInString(line)-startCol, 1)
				}
				marker := strings.Repeat(" ", max(startCol, 0)) + strings.Repeat("^", n)
				if opts.Color {
					marker = color + marker + ansiReset
				}
				fmt.Fprintf(&b, "%s| %s\n", strings.Repeat(" ", len(gutter)-2), marker)
			}
		}
		if d.Detail != "" {
			b.WriteString("\n")
			b.WriteString(wrap(d.Detail, width))
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// sourceLine returns the line holding p, tabs expanded to one space each so
// the caret line stays aligned.
func sourceLine(src []byte, p Pos) (string, bool) {
	if src == nil || p.Line < 1 {
		return "", false
	}
	start := min(p.Byte, len(src))
	for start > 0 && src[start-1] != '\n' {
		start--
	}
	end := start
	for end < len(src) && src[end] != '\n' {
		end++
	}
	line := strings.TrimRight(string(src[start:end]), "\r")
	return strings.ReplaceAll(line, "\t", " "), true
}

func wrap(s string, width int) string {
	var out strings.Builder
	for i, para := range strings.Split(s, "\n") {
		if i > 0 {
			out.WriteString("\n")
		}
		col := 0
		for j, word := range strings.Fields(para) {
			if j > 0 {
				if col+1+len(word) > width {
					out.WriteString("\n")
					col = 0
				} else {
					out.WriteString(" ")
					col++
				}
			}
			out.WriteString(word)
			col += len(word)
		}
	}
	return out.String()
}

// JSON shapes of `terraform validate -json`, so tools that read that read
// ours. Field is our addition.
type jsonValidation struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Field    string       `json:"field,omitempty"`
	Range    *Range       `json:"range,omitempty"`
	Snippet  *jsonSnippet `json:"snippet,omitempty"`
}

type jsonSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
	Values               []any   `json:"values"`
}

// WriteJSON writes the diagnostics as a validation result document.
func WriteJSON(w io.Writer, diags Diagnostics, sources map[string][]byte) error {
	out := jsonValidation{FormatVersion: "1.0", Diagnostics: []jsonDiagnostic{}}
	for _, d := range diags {
		jd := jsonDiagnostic{Severity: d.Severity.String(), Summary: d.Summary, Detail: d.Detail, Field: d.Field, Range: d.Subject}
		if d.Severity == Error {
			out.ErrorCount++
		} else {
			out.WarningCount++
		}
		if r := d.Subject; r != nil {
			if line, ok := sourceLine(sources[r.Filename], r.Start); ok {
				// Offsets are in bytes; columns count characters, so the
				// line's start is found in the source, not from Column.
				src := sources[r.Filename]
				lineStart := min(r.Start.Byte, len(src))
				for lineStart > 0 && src[lineStart-1] != '\n' {
					lineStart--
				}
				s := &jsonSnippet{Code: line, StartLine: r.Start.Line, Values: []any{}}
				s.HighlightStartOffset = max(r.Start.Byte-lineStart, 0)
				s.HighlightEndOffset = min(max(r.End.Byte-lineStart, s.HighlightStartOffset), len(line))
				jd.Snippet = s
			}
		}
		out.Diagnostics = append(out.Diagnostics, jd)
	}
	out.Valid = out.ErrorCount == 0
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
