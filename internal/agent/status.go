package agent

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Report is what `rewind status` shows: the agent and each job of the
// plan, from the agent's state folder. It needs no running agent.
type Report struct {
	StateDir string `json:"state_dir"`
	// AgentRunning is true when an agent holds the state folder's lock.
	AgentRunning bool        `json:"agent_running"`
	AgentPID     int         `json:"agent_pid,omitempty"`
	AgentStarted *time.Time  `json:"agent_started,omitempty"`
	Jobs         []JobReport `json:"jobs"`
}

// JobReport is one job in a Report.
type JobReport struct {
	Job      string `json:"job"`
	Kind     string `json:"kind"`
	Schedule string `json:"schedule"`
	// LastRun is the most recent run, if any.
	LastRun     *event.Run `json:"last_run,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// NextRun is when the job runs next (unset for continuous and manual
	// jobs).
	NextRun *time.Time `json:"next_run,omitempty"`
	// LastPoint is the newest restorable point known.
	LastPoint *time.Time `json:"last_point,omitempty"`
	// RPO is the target in seconds (0: none), Lag the current lag in
	// seconds, and RPOState "OK", "BREACH" or "" without a target.
	RPO      float64 `json:"rpo_seconds"`
	Lag      float64 `json:"lag_seconds"`
	RPOState string  `json:"rpo_state,omitempty"`
	Failures int     `json:"consecutive_failures"`
	Running  bool    `json:"running"`
	// RunningSince is the start of the run under way.
	RunningSince *time.Time `json:"running_since,omitempty"`
	// Error says why the job's state could not be read.
	Error string `json:"error,omitempty"`
}

// Status builds the Report of p from the state folder dir at now.
func Status(p *plan.Plan, dir string, parse ParseSchedule, now time.Time) *Report {
	s := Store{Dir: dir}
	rep := &Report{StateDir: dir, Jobs: []JobReport{}}
	if _, err := os.Stat(dir); err == nil {
		rep.AgentRunning = Locked(s.agentLock())
		if rep.AgentRunning {
			var info struct {
				PID     int       `json:"pid"`
				Started time.Time `json:"started"`
			}
			if b, err := os.ReadFile(s.agentLock() + ".info"); err == nil && json.Unmarshal(b, &info) == nil {
				started := info.Started.UTC()
				rep.AgentPID, rep.AgentStarted = info.PID, &started
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Jobs)) {
		j := p.Jobs[name]
		jr := JobReport{Job: name, Kind: j.Kind, Schedule: j.Schedule, RPO: j.RPO.D().Seconds()}
		if jr.Schedule == "" {
			jr.Schedule = "manual"
		}
		st, err := s.Load(name)
		if err != nil {
			jr.Error = err.Error()
			st = &JobState{Job: name}
		}
		jr.LastRun, jr.Failures = st.LastRun, st.Failures
		if !st.LastSuccess.IsZero() {
			jr.LastSuccess = &st.LastSuccess
		}
		if _, err := os.Stat(s.LockPath(name)); err == nil && Locked(s.LockPath(name)) {
			jr.Running = true
			if st.Running != nil {
				jr.RunningSince = &st.Running.Start
			}
		}
		if j.Schedule != "" && j.Schedule != plan.ScheduleContinuous {
			if sc, err := parse(j.Schedule); err == nil {
				next := st.NextRun
				if !rep.AgentRunning || next.IsZero() || next.Before(now) {
					next = sc.Next(now)
				}
				if !next.IsZero() {
					jr.NextRun = &next
				}
			}
		}
		point := st.LastPoint
		if j.Schedule == plan.ScheduleContinuous {
			c := &jobCtl{a: &Agent{store: s, cfg: Config{Now: func() time.Time { return now }}}, job: &plan.Job{Name: name, Schedule: j.Schedule}, state: st, running: jr.Running}
			c.refreshWatchPointNoSave()
			point = c.state.LastPoint
		}
		if !point.IsZero() {
			jr.LastPoint = &point
		}
		if j.RPO > 0 {
			since := point
			if since.IsZero() {
				since = st.Known
			}
			if !since.IsZero() {
				jr.Lag = now.Sub(since).Seconds()
			}
			jr.RPOState = "OK"
			if jr.Lag > jr.RPO {
				jr.RPOState = "BREACH"
			}
		}
		// Every time in the report is UTC, as in every --json document.
		for _, t := range []*time.Time{jr.LastSuccess, jr.RunningSince, jr.NextRun, jr.LastPoint} {
			if t != nil {
				*t = t.UTC()
			}
		}
		rep.Jobs = append(rep.Jobs, jr)
	}
	return rep
}
