package drill

import (
	"encoding/json"
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

// drilledHost is the host a drill event drilled: its report's, else the
// event's (an agent records its runs under its own host, and may drill
// another).
func drilledHost(e *event.Stored) string {
	var rep struct {
		Host string `json:"hostname"`
	}
	if len(e.Report) > 0 && json.Unmarshal(e.Report, &rep) == nil && rep.Host != "" {
		return rep.Host
	}
	return e.Host
}

// Trend turns the drill events of rs (oldest first, any kinds) into
// rows, oldest first; host, when not empty, keeps the drills of that
// host only.
func Trend(rs []event.Stored, host string) []Past {
	out := []Past{}
	byHost := map[string][]float64{} // successful RTOs so far, per host
	for _, e := range rs {
		if e.Kind != Kind {
			continue
		}
		h := drilledHost(&e)
		if host != "" && h != host {
			continue
		}
		p := Past{Time: e.Start, Host: h, Snapshot: e.Snapshot, Result: e.Result, Error: e.Error,
			Restore: PhaseSeconds(e.Phases, PhaseRestore), Boot: PhaseSeconds(e.Phases, PhaseBoot), Probes: PhaseSeconds(e.Phases, PhaseProbes)}
		p.RTO = p.Restore + p.Boot + p.Probes
		if e.Result == event.ResultSuccess {
			if prev := byHost[h]; len(prev) > 0 {
				d := p.RTO - prev[len(prev)-1]
				m := p.RTO - Median(prev)
				p.PrevChange, p.MedianChange = &d, &m
			}
			byHost[h] = append(byHost[h], p.RTO)
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
