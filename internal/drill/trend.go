package drill

import (
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

// Past is one drill read back from the event log, with its RTO trend.
type Past struct {
	Time     time.Time `json:"time"`
	Host     string    `json:"hostname"`
	Snapshot string    `json:"snapshot_id"`
	Result   string    `json:"result"`
	Error    string    `json:"error,omitempty"`
	Restore  float64   `json:"restore_seconds"`
	Boot     float64   `json:"boot_seconds"`
	Probes   float64   `json:"probes_seconds"`
	RTO      float64   `json:"rto_seconds"`
	// PrevChange is the RTO minus that of the previous successful drill
	// of the host, MedianChange minus the median of all the host's
	// successful drills before it; nil for the first successful one and
	// for a failed drill (whose RTO measures nothing).
	PrevChange   *float64 `json:"rto_change_seconds,omitempty"`
	MedianChange *float64 `json:"rto_change_median_seconds,omitempty"`
}

// Trend turns the drill events of rs (oldest first, any kinds) into
// rows, oldest first.
func Trend(rs []event.Stored) []Past {
	out := []Past{}
	byHost := map[string][]float64{} // successful RTOs so far, per host
	for _, e := range rs {
		if e.Kind != Kind {
			continue
		}
		p := Past{Time: e.Start, Host: e.Host, Snapshot: e.Snapshot, Result: e.Result, Error: e.Error,
			Restore: PhaseSeconds(e.Phases, PhaseRestore), Boot: PhaseSeconds(e.Phases, PhaseBoot), Probes: PhaseSeconds(e.Phases, PhaseProbes)}
		p.RTO = p.Restore + p.Boot + p.Probes
		if e.Result == event.ResultSuccess {
			if prev := byHost[e.Host]; len(prev) > 0 {
				d := p.RTO - prev[len(prev)-1]
				m := p.RTO - Median(prev)
				p.PrevChange, p.MedianChange = &d, &m
			}
			byHost[e.Host] = append(byHost[e.Host], p.RTO)
		}
		out = append(out, p)
	}
	return out
}

// Median is the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Verified maps each snapshot ID to the end of its newest successful
// drill: the snapshots "verified by drill".
func Verified(rs []event.Stored) map[string]time.Time {
	out := map[string]time.Time{}
	for _, e := range rs {
		if e.Kind == Kind && e.Result == event.ResultSuccess && e.Snapshot != "" {
			if t, ok := out[e.Snapshot]; !ok || e.End.After(t) {
				out[e.Snapshot] = e.End
			}
		}
	}
	return out
}
