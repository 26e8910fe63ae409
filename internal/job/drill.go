package job

import (
	"encoding/json"

	"github.com/rewind-backup/rewind/internal/drill"
	"github.com/rewind-backup/rewind/internal/plan"
)

// drillArgs are the arguments of `rewind drill` for a drill job: the
// agent records the event itself (--no-event), under the job's name.
func drillArgs(j *plan.Job, host string) []string {
	if j.DrillHost != "" {
		host = j.DrillHost
	}
	args := []string{"--no-event", "--job", j.Name, "--host", host}
	if j.Timeout > 0 {
		args = append(args, "--timeout", j.Timeout.D().String())
	}
	for _, p := range j.Probes {
		args = append(args, "--probe", p)
	}
	return args
}

// drillResult copies a drill's report (the child's summary line) into
// the run: the snapshot drilled, the timed phases and the report.
func (s *state) drillResult(line []byte) {
	if len(line) == 0 {
		return
	}
	var rep drill.Report
	if err := json.Unmarshal(line, &rep); err != nil {
		s.log.Warn("the drill's report is unreadable", "err", err)
		return
	}
	s.rec.Snapshot, s.rec.Phases = rep.Snapshot, rep.Phases
	if b, err := json.Marshal(&rep); err == nil {
		s.rec.Report = b
	}
}
