// Package event records runs of a plan's jobs in the repository (the
// events/ folder), so that the record of what ran, when and how it ended
// survives the loss of the host. `rewind events` lists them; the agent's
// status, metrics and notifications read the same records.
package event

import (
	"encoding/json"
	"time"
)

// Results of a run.
const (
	ResultSuccess = "success" // everything ran
	ResultWarning = "warning" // snapshot saved, some files unreadable (exit 3)
	ResultFailed  = "failed"  // the job did not do its work
)

// Run is one run of one job. Its JSON form is the content of an event
// file (docs/FORMAT.md).
type Run struct {
	Host string `json:"hostname"`
	Job  string `json:"job"`
	Kind string `json:"kind"`
	// Trigger says why it ran: schedule, catch-up, retry, manual, continuous.
	Trigger string `json:"trigger"`
	// Action is set for a continuous job's watcher: "start" or "stop"
	// (a failed stop means it died).
	Action string    `json:"action,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Result string    `json:"result"`
	// Error is the failure's message, for a failed run.
	Error string `json:"error,omitempty"`
	// Snapshot is the ID of the snapshot the run saved, if any.
	Snapshot string `json:"snapshot_id,omitempty"`
	Files    int64  `json:"files"`
	Bytes    int64  `json:"bytes"`
	// Added is what the run added to the repository, in bytes.
	Added int64 `json:"bytes_added"`
	// Steps are the before/after/on_failure steps, in the order they ran.
	Steps []Step `json:"steps,omitempty"`
	// Attempt counts retries: 1 for the first.
	Attempt int `json:"attempt"`
	// Phases time the parts of a recover or a drill (restore, boot,
	// probes); their sum is the measured time to recover.
	Phases []Phase `json:"phases,omitempty"`
	// Report is the whole report of a recover or a drill, as its command
	// prints it with --json.
	Report json.RawMessage `json:"report,omitempty"`
}

// Phase is one timed part of a run.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Step is one step of a run, as it ran.
type Step struct {
	Phase    string        `json:"phase"` // before, after, on_failure, undo
	Kind     string        `json:"kind"`
	Arg      string        `json:"arg,omitempty"`
	Result   string        `json:"result"` // success, failed, skipped
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}
