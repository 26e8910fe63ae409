package metrics

import (
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rewind-backup/rewind/internal/event"
)

// drillKind is the event kind of a drill (internal/drill.Kind).
const drillKind = "drill"

// drillGauges are the measured recovery times of drills, by the host
// drilled (whose snapshot was rebuilt and booted).
type drillGauges struct {
	rto, phase, lastSuccess, lastOK *prometheus.GaugeVec
}

func newDrillGauges(reg *prometheus.Registry) drillGauges {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	return drillGauges{
		rto:         gauge("rewind_drill_rto_seconds", "Measured time to recover of the host's last successful drill: restore, boot and probes.", "host"),
		phase:       gauge("rewind_drill_phase_seconds", "Duration of each phase (restore, boot, probes) of the host's last successful drill.", "host", "phase"),
		lastSuccess: gauge("rewind_drill_last_success_timestamp_seconds", "End of the host's last successful drill, in Unix seconds.", "host"),
		lastOK:      gauge("rewind_drill_last_run_success", "1 if the host's last drill passed, 0 if it failed.", "host"),
	}
}

// finished records a drill run. The host is the one drilled, as its
// report names it, else the run's.
func (d drillGauges) finished(r *event.Run, agentHost string) {
	host := r.Host
	var rep struct {
		Host string `json:"hostname"`
	}
	if len(r.Report) > 0 && json.Unmarshal(r.Report, &rep) == nil && rep.Host != "" {
		host = rep.Host
	}
	if host == "" {
		host = agentHost
	}
	if r.Result != event.ResultSuccess {
		d.lastOK.WithLabelValues(host).Set(0)
		return
	}
	d.lastOK.WithLabelValues(host).Set(1)
	d.lastSuccess.WithLabelValues(host).Set(unix(r.End))
	var sum float64
	for _, p := range r.Phases {
		d.phase.WithLabelValues(host, p.Name).Set(p.Duration.Seconds())
		sum += p.Duration.Seconds()
	}
	d.rto.WithLabelValues(host).Set(sum)
}
