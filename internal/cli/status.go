package cli

import (
	"fmt"
	"github.com/rewind-backup/rewind/internal/plan"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/ui"
)

func newStatusCmd(g *globals) *cobra.Command {
	var config, stateDir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each job of the plan: last run, next run, RPO lag, failures",
		Long: `Show whether the agent runs, and for each job of the plan: its kind and
schedule, its last run and how it ended, when it runs next, how old its
newest restorable point is against its RPO target (OK or BREACH), its
failed runs in a row, and whether it runs now.

status reads the plan and the agent's state folder, not the repositories,
so it answers at once and also when the agent is not running (it says so;
the next runs shown are then those the schedules give).`,
		Example: `  rewind status
  rewind status --json
  rewind status --config /etc/rewind/web1.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadAgentPlan(planPath(config))
			if err != nil {
				return err
			}
			dir := stateDir
			if dir == "" {
				dir = agent.StateDirOf(p)
			}
			rep := agent.Status(p, dir, parseSchedule, time.Now())
			if g.json {
				return g.ui.JSONDoc(rep)
			}
			printStatus(g, rep)
			return nil
		},
	}
	addConfigFlag(cmd, &config)
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "read the agent's state from `dir` (default: the plan's agent.state_dir)")
	return cmd
}

func printStatus(g *globals, rep *agent.Report) {
	if rep.AgentRunning {
		since := ""
		if rep.AgentStarted != nil {
			since = ", since " + rep.AgentStarted.Local().Format("2006-01-02 15:04:05")
		}
		g.ui.Printf("agent: running (pid %d%s)\n\n", rep.AgentPID, since)
	} else {
		g.ui.Printf("agent: NOT RUNNING (state from %s; next runs are what the schedules give)\n\n", rep.StateDir)
	}
	now := time.Now()
	t := ui.NewTable("JOB", "KIND", "SCHEDULE", "LAST RUN", "RESULT", "NEXT RUN", "LAG / RPO", "RPO", "FAILURES", "RUNNING").Right(8)
	for _, j := range rep.Jobs {
		last, result := "never", ""
		if j.LastRun != nil {
			last = ago(now, j.LastRun.Start)
			result = j.LastRun.Result
			if j.LastRun.Action != "" {
				result = j.LastRun.Action + " " + result
			}
		}
		next := "-"
		if j.NextRun != nil {
			next = j.NextRun.Local().Format("2006-01-02 15:04:05")
		}
		lag := "-"
		if j.RPO > 0 {
			lag = fmt.Sprintf("%s / %s", secs(j.Lag), secs(j.RPO))
		}
		running := ""
		if j.Running {
			running = "yes"
			if j.RunningSince != nil {
				running = "since " + j.RunningSince.Local().Format("15:04:05")
			}
		}
		if j.Error != "" {
			result = "state unreadable"
		}
		t.Row(j.Job, j.Kind, j.Schedule, last, result, next, lag, j.RPOState, fmt.Sprint(j.Failures), running)
	}
	g.ui.Table(t)
}

// secs writes a number of seconds as the plan writes durations ("25h",
// "1h30m", "2d").
func secs(s float64) string {
	return plan.Duration((time.Duration(s) * time.Second).Round(time.Second)).String()
}

func ago(now, t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05") + " (" + now.Sub(t).Round(time.Second).String() + " ago)"
}
