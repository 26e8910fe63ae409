package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a problem makes a plan unusable.
type Severity int

const (
	// SeverityError is a plan that cannot run as written.
	SeverityError Severity = iota
	// SeverityWarning is something that could not be checked, or that is
	// likely a mistake but does not stop the plan.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// MarshalText writes "error" or "warning".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "error" or "warning".
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = SeverityError
	case "warning":
		*s = SeverityWarning
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// ErrUncheckable is wrapped by an Env's error when the thing asked about
// cannot be checked on this machine (no systemd running): Check reports
// it as a warning.
var ErrUncheckable = errors.New("cannot be checked")

// Problem is one thing wrong with a plan, at the node that is wrong.
type Problem struct {
	File string `json:"file,omitempty"`
	Pos  Pos    `json:"pos"`
	// Field is the dotted path of the node, e.g. "jobs.www.schedule" or
	// "jobs.nightly.before[0]".
	Field    string   `json:"field"`
	Msg      string   `json:"message"`
	Severity Severity `json:"severity"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	switch {
	case p.Pos.Column > 0:
		fmt.Fprintf(&b, "%d:%d:", p.Pos.Line, p.Pos.Column)
	case p.Pos.Line > 0:
		fmt.Fprintf(&b, "%d:", p.Pos.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is a list of problems; as an error it prints one per line as
// FILE:LINE:COL: field: message.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders ps by position in the file.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
}

// Errors returns the number of error-level problems.
func (ps Problems) Errors() int {
	n := 0
	for _, p := range ps {
		if p.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Err returns ps as an error when it holds an error-level problem, else
// nil.
func (ps Problems) Err() error {
	if ps.Errors() == 0 {
		return nil
	}
	return ps
}
