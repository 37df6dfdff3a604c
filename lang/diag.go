package lang

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a source file. Line and Column count from 1; Column
// counts Unicode characters, Byte counts bytes from the start of the file.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Range is a span of a source file, End exclusive.
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// String renders the range as file:line:column, the form editors jump to.
func (r Range) String() string {
	if r.Filename == "" && r.Start.Line == 0 {
		return "<unknown>"
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// Empty reports whether the range points nowhere.
func (r Range) Empty() bool { return r.Filename == "" && r.Start.Line == 0 }

// Severity says whether a diagnostic stops the operation.
type Severity int

const (
	// Error diagnostics make the configuration invalid.
	Error Severity = iota + 1
	// Warning diagnostics are shown but do not fail validation.
	Warning
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "invalid"
}

// Diagnostic is a problem with what the user wrote. Both the YAML and the
// HCL front-ends report through this one type.
type Diagnostic struct {
	Severity Severity
	// Summary is one line, no trailing punctuation.
	Summary string
	// Detail says what is wrong and what to do about it.
	Detail string
	// Subject is the tightest range that shows the problem, nil when the
	// problem has no source location.
	Subject *Range
	// Context, when set, is a wider range around Subject (the whole block or
	// mapping) used to show the snippet.
	Context *Range
	// Field is the dotted path of the field at fault within its resource
	// ("resources.gpu", "ports[1]"), empty when not about a field.
	Field string
}

// Error implements error so a single diagnostic can travel as one.
func (d *Diagnostic) Error() string {
	var b strings.Builder
	if d.Subject != nil {
		b.WriteString(d.Subject.String())
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("; ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Diagnostics is a list of diagnostics, errors and warnings mixed.
type Diagnostics []*Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errs returns only the error diagnostics.
func (ds Diagnostics) Errs() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	return out
}

// Err returns the diagnostics as an error when there is at least one error
// among them, nil otherwise.
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return diagError(ds)
}

// Sort orders the diagnostics by file, then position, errors before
// warnings at the same place, so output is stable across runs.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		ar, br := a.Subject, b.Subject
		switch {
		case ar == nil && br == nil:
			return a.Severity < b.Severity
		case ar == nil:
			return true
		case br == nil:
			return false
		}
		if ar.Filename != br.Filename {
			return ar.Filename < br.Filename
		}
		if ar.Start.Byte != br.Start.Byte {
			return ar.Start.Byte < br.Start.Byte
		}
		return a.Severity < b.Severity
	})
}

type diagError Diagnostics

func (e diagError) Error() string {
	errs := Diagnostics(e).Errs()
	if len(errs) == 1 {
		return errs[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", errs[0].Error(), len(errs)-1)
}

// Errorf builds an error diagnostic at rng about field.
func Errorf(rng Range, field, summary, detailFormat string, args ...any) *Diagnostic {
	r := rng
	d := &Diagnostic{Severity: Error, Summary: summary, Field: field, Subject: &r}
	if detailFormat != "" {
		d.Detail = fmt.Sprintf(detailFormat, args...)
	}
	if rng.Empty() {
		d.Subject = nil
	}
	return d
}

// Warnf builds a warning diagnostic at rng about field.
func Warnf(rng Range, field, summary, detailFormat string, args ...any) *Diagnostic {
	d := Errorf(rng, field, summary, detailFormat, args...)
	d.Severity = Warning
	return d
}
