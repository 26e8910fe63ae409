package drill

import (
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/recovery"
)

// Phase names of a drill, in the order they run.
const (
	PhaseRestore = "restore"
	PhaseBoot    = "boot"
	PhaseProbes  = "probes"
)

// Kind is the event kind of a drill.
const Kind = "drill"

// Report is what one drill did. It is printed by `rewind drill --json`
// and stored as the report of the drill's event (docs/JSON.md).
type Report struct {
	Host     string    `json:"hostname"`
	Snapshot string    `json:"snapshot_id"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	// Result is success or failed (event results).
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// BootMode is bios or uefi, Accel kvm or tcg.
	BootMode string `json:"boot_mode"`
	Accel    string `json:"accel,omitempty"`
	// Phases time restore, boot and probes; RTOSeconds is their sum.
	Phases     []event.Phase `json:"phases"`
	RTOSeconds float64       `json:"rto_seconds"`
	Probes     []ProbeResult `json:"probes"`
	// Recovery is the report of the restore onto the VM disk.
	Recovery *recovery.Report `json:"recovery,omitempty"`
	// Kept is the folder holding the VM disk and serial log when the
	// drill was asked to keep them (--keep).
	Kept string `json:"kept,omitempty"`
	// Console is the end of the guest's serial console, for a drill that
	// failed.
	Console string `json:"console,omitempty"`
}

// ProbeResult is how one probe ended.
type ProbeResult struct {
	Probe   string  `json:"probe"` // the probe's line, "http / 80 200"
	Result  string  `json:"result"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"` // from the start of the boot until it passed or gave up
}

// addPhase appends a timed phase and keeps the RTO their sum.
func (r *Report) addPhase(name string, d time.Duration) {
	r.Phases = append(r.Phases, event.Phase{Name: name, Duration: d})
	var sum time.Duration
	for _, p := range r.Phases {
		sum += p.Duration
	}
	r.RTOSeconds = sum.Seconds()
}

// PhaseSeconds is the duration of the phase called name in phases, in
// seconds (0 when absent).
func PhaseSeconds(phases []event.Phase, name string) float64 {
	for _, p := range phases {
		if p.Name == name {
			return p.Duration.Seconds()
		}
	}
	return 0
}
