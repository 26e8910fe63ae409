package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

// Payload is the webhook's JSON body. Its fields are a stable contract
// (docs/AGENT.md): fields may be added, never renamed or removed.
type Payload struct {
	// Version is the schema's version: 1.
	Version  int    `json:"version"`
	Kind     string `json:"kind"`
	Hostname string `json:"hostname"`
	Job      string `json:"job"`
	// Time is when the event happened (RFC 3339): a run's end, or the
	// RPO check.
	Time time.Time `json:"time"`
	// Result, Error and Snapshot come from the run ("" for rpo events).
	Result   string `json:"result,omitempty"`
	Error    string `json:"error,omitempty"`
	Snapshot string `json:"snapshot_id,omitempty"`
	// Trigger, Start, End, DurationSeconds, Attempt, Files, Bytes and
	// BytesAdded describe the run, when there is one.
	Trigger         string     `json:"trigger,omitempty"`
	Start           *time.Time `json:"start,omitempty"`
	End             *time.Time `json:"end,omitempty"`
	DurationSeconds float64    `json:"duration_seconds,omitempty"`
	Attempt         int        `json:"attempt,omitempty"`
	Files           int64      `json:"files,omitempty"`
	Bytes           int64      `json:"bytes,omitempty"`
	BytesAdded      int64      `json:"bytes_added,omitempty"`
	// Failures counts failed runs in a row (failure events).
	Failures int `json:"failures,omitempty"`
	// LagSeconds and TargetSeconds are the RPO lag and target, when known.
	LagSeconds    float64 `json:"lag_seconds,omitempty"`
	TargetSeconds float64 `json:"target_seconds,omitempty"`
	// Message is one line for people, the same as the email's subject
	// without its "[rewind] " prefix.
	Message string `json:"message"`
}

// NewPayload is e as the webhook sends it.
func NewPayload(e Event) Payload {
	p := Payload{
		Version:       1,
		Kind:          e.Kind,
		Hostname:      e.Host,
		Job:           e.Job,
		Time:          e.Time.UTC(),
		Failures:      e.Failures,
		LagSeconds:    e.Lag.Seconds(),
		TargetSeconds: e.Target.Seconds(),
		Message:       Summary(e),
	}
	if r := e.Run; r != nil {
		p.Result, p.Error, p.Snapshot = r.Result, r.Error, r.Snapshot
		p.Trigger, p.Attempt = r.Trigger, r.Attempt
		p.Files, p.Bytes, p.BytesAdded = r.Files, r.Bytes, r.Added
		if !r.Start.IsZero() {
			s := r.Start.UTC()
			p.Start = &s
		}
		if !r.End.IsZero() {
			end := r.End.UTC()
			p.End = &end
			if !r.Start.IsZero() {
				p.DurationSeconds = r.End.Sub(r.Start).Seconds()
			}
		}
	}
	return p
}

// Summary is one line saying what happened, such as
// "web1: job www FAILED (3 times in a row)".
func Summary(e Event) string {
	head := e.Host + ": job " + e.Job + " "
	switch e.Kind {
	case KindStart:
		return head + "started"
	case KindSuccess:
		if e.Run != nil && e.Run.Result == event.ResultWarning {
			return head + "succeeded with warnings"
		}
		return head + "succeeded"
	case KindFailure:
		if e.Failures > 1 {
			return fmt.Sprintf("%sFAILED (%d times in a row)", head, e.Failures)
		}
		return head + "FAILED"
	case KindRecovery:
		if e.Run == nil {
			return fmt.Sprintf("%sback within its RPO (lag %s, target %s)", head, roundDur(e.Lag), roundDur(e.Target))
		}
		return head + "recovered"
	case KindRPO:
		if e.Lag <= 0 {
			return fmt.Sprintf("%sRPO exceeded: no restorable point (target %s)", head, roundDur(e.Target))
		}
		return fmt.Sprintf("%sRPO exceeded (lag %s, target %s)", head, roundDur(e.Lag), roundDur(e.Target))
	}
	return head + e.Kind
}

// Subject is the email subject: the summary after "[rewind] ".
func Subject(e Event) string { return "[rewind] " + Summary(e) }

// Body is the plain-text details of e, for email and ping bodies.
func Body(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s.\n\n", Summary(e))
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%-11s %s\n", name+":", value)
		}
	}
	line("Host", e.Host)
	line("Job", e.Job)
	line("Event", e.Kind)
	line("Time", e.Time.Format(time.RFC3339))
	if r := e.Run; r != nil {
		line("Kind", r.Kind)
		line("Result", r.Result)
		line("Trigger", r.Trigger)
		if r.Attempt > 1 {
			line("Attempt", fmt.Sprint(r.Attempt))
		}
		if !r.Start.IsZero() {
			line("Started", r.Start.Format(time.RFC3339))
		}
		if !r.End.IsZero() {
			took := ""
			if !r.Start.IsZero() {
				took = " (took " + roundDur(r.End.Sub(r.Start)) + ")"
			}
			line("Ended", r.End.Format(time.RFC3339)+took)
		}
		line("Snapshot", r.Snapshot)
		if r.Files != 0 || r.Bytes != 0 {
			line("Files", fmt.Sprint(r.Files))
			line("Bytes", fmt.Sprint(r.Bytes))
			line("Added", fmt.Sprint(r.Added))
		}
		line("Error", r.Error)
	}
	if e.Failures > 1 {
		line("Failures", fmt.Sprintf("%d in a row", e.Failures))
	}
	if e.Target > 0 {
		if e.Lag > 0 {
			line("RPO lag", roundDur(e.Lag))
		}
		line("RPO target", roundDur(e.Target))
	}
	if r := e.Run; r != nil && len(r.Steps) > 0 {
		b.WriteString("\nSteps:\n")
		for _, s := range r.Steps {
			fmt.Fprintf(&b, "  %-10s %s %s: %s", s.Phase, s.Kind, s.Arg, s.Result)
			if s.Error != "" {
				fmt.Fprintf(&b, " (%s)", s.Error)
			}
			b.WriteString("\n")
		}
	}
	if e.Text != "" {
		b.WriteString("\n" + e.Text + "\n")
	}
	return b.String()
}

// roundDur shows d to the second (to the millisecond under a second).
func roundDur(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
