package lang

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
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
		summary := printable(d.Summary, maxMessage)
		if opts.Color {
			fmt.Fprintf(&b, "%s%s%s: %s%s\n", ansiBold, color, sev, summary, ansiReset)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", sev, summary)
		}
		if d.Subject != nil {
			r := d.Subject
			fmt.Fprintf(&b, "\n  on %s line %d, column %d", r.Filename, r.Start.Line, r.Start.Column)
			if d.Field != "" {
				fmt.Fprintf(&b, ", in %s", d.Field)
			}
			b.WriteString(":\n")
			if sn, ok := snippetOf(sources[r.Filename], *r); ok {
				gutter := fmt.Sprintf("%5d | ", r.Start.Line)
				fmt.Fprintf(&b, "%s%s\n", gutter, sn.code)
				marker := strings.Repeat(" ", sn.col) + strings.Repeat("^", sn.width)
				if opts.Color {
					marker = color + marker + ansiReset
				}
				fmt.Fprintf(&b, "%s| %s\n", strings.Repeat(" ", len(gutter)-2), marker)
			}
		}
		if d.Detail != "" {
			b.WriteString("\n")
			b.WriteString(wrap(printable(d.Detail, maxMessage), width))
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// A snippet shows at most snippetWidth columns of its source line, with
// up to snippetBefore of them before the subject: enough for any line
// people write, and a bound on what a one-line file of megabytes (minified
// JSON, a binary) makes a diagnostic print. maxMessage bounds a summary or
// detail, which may quote the source.
const (
	snippetWidth  = 120
	snippetBefore = 40
	maxMessage    = 2000
)

// snippet is the part of a source line a diagnostic shows: printable text
// and where the subject is in it, in columns (for carets) and in bytes
// (for the JSON highlight offsets).
type snippet struct {
	code       string
	col, width int // columns before the subject, and its width (at least 1)
	start, end int // byte offsets of the subject in code
}

// snippetOf cuts the line holding r's start to a window around r and makes
// it printable: a tab shows as one space so the carets stay aligned,
// control characters and bytes that are not UTF-8 as Go escapes (\x00,
// \u200b), and a cut end as "…". The subject ends at r's end, or at the end
// of the line when r spans several.
func snippetOf(src []byte, r Range) (snippet, bool) {
	if src == nil || r.Start.Line < 1 {
		return snippet{}, false
	}
	at := min(max(r.Start.Byte, 0), len(src))
	lineStart := at
	for lineStart > 0 && src[lineStart-1] != '\n' {
		lineStart--
	}
	lineEnd := at
	for lineEnd < len(src) && src[lineEnd] != '\n' {
		lineEnd++
	}
	if lineEnd > lineStart && src[lineEnd-1] == '\r' {
		lineEnd--
	}
	at = min(at, lineEnd)
	end := lineEnd
	if r.End.Line == r.Start.Line {
		end = min(max(r.End.Byte, at), lineEnd)
	}

	// Start a little before the subject: snippetBefore characters take at
	// most utf8.UTFMax bytes each. Whole characters only.
	from := max(lineStart, at-snippetBefore*utf8.UTFMax)
	for from > lineStart && !utf8.RuneStart(src[from]) {
		from--
	}
	type piece struct {
		text string
		pos  int // byte offset in src
	}
	var before []piece
	for i := from; i < at; {
		text, n := printableRune(src[i:])
		before = append(before, piece{text, i})
		i += n
	}
	cut := from > lineStart
	if k := len(before) - snippetBefore; k > 0 {
		before, cut = before[k:], true
	}
	var b strings.Builder
	cols := 0
	if cut {
		b.WriteString("…")
		cols++
	}
	for _, p := range before {
		b.WriteString(p.text)
		cols += utf8.RuneCountInString(p.text)
	}
	sn := snippet{col: cols, start: b.Len()}
	i := at
	for ; i < lineEnd && cols < snippetWidth; i += 0 {
		text, n := printableRune(src[i:])
		b.WriteString(text)
		cols += utf8.RuneCountInString(text)
		i += n
		if i <= end {
			sn.end = b.Len()
			sn.width = cols - sn.col
		}
	}
	if i < lineEnd {
		b.WriteString("…")
	}
	sn.code = b.String()
	if sn.end < sn.start {
		sn.end = sn.start
	}
	sn.width = max(sn.width, 1)
	return sn, true
}

// printableRune returns the first character of b as it is shown, and its
// length in b.
func printableRune(b []byte) (string, int) {
	r, n := utf8.DecodeRune(b)
	switch {
	case r == '\t':
		return " ", n
	case r == utf8.RuneError && n <= 1:
		return fmt.Sprintf(`\x%02x`, b[0]), 1
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r), n
	case !unicode.IsPrint(r):
		return fmt.Sprintf(`\u%04x`, r), n
	}
	return string(b[:n]), n
}

// printable escapes what a terminal should not be sent in a message
// (control characters other than newlines, bytes that are not UTF-8), and
// cuts it to at most limit bytes.
func printable(s string, limit int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && !unicode.IsPrint(r)) {
			clean = false
			break
		}
	}
	if clean && len(s) <= limit {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < limit; {
		if s[i] == '\n' {
			b.WriteByte('\n')
			i++
			continue
		}
		text, n := printableRune([]byte(s[i:min(len(s), i+utf8.UTFMax)]))
		if text == " " && s[i] == '\t' {
			text = "\t"
		}
		b.WriteString(text)
		i += n
		if i < len(s) && b.Len() >= limit {
			b.WriteString("…")
		}
	}
	return b.String()
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
			// The code is the window the text form shows, so the offsets
			// are bytes into that window.
			if sn, ok := snippetOf(sources[r.Filename], *r); ok {
				jd.Snippet = &jsonSnippet{Code: sn.code, StartLine: r.Start.Line, Values: []any{},
					HighlightStartOffset: sn.start, HighlightEndOffset: sn.end}
			}
		}
		out.Diagnostics = append(out.Diagnostics, jd)
	}
	out.Valid = out.ErrorCount == 0
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
