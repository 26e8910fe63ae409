package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
)

func newEventsCmd(g *globals) *cobra.Command {
	var config, job, since, host string
	cmd := &cobra.Command{
		Use:   "events [--job JOB] [--since DURATION|TIME]",
		Short: "List the recorded runs of the plan's jobs (the event log)",
		Long: `List the runs of the plan's jobs that the agent (and rewind plan run)
recorded in the repositories: when each ran, why (schedule, catch-up,
retry, manual, continuous, interrupted), how it ended, what it saved, and
the error of a failed run. The log is in the repository, so it survives
the loss of the host.

Without --repo the events of every repository of the plan are listed;
with --repo, those of that repository only. --since takes a duration
(24h, 7d, 2w) or a time (RFC 3339, "2026-11-22 10:00", -15m).`,
		Example: `  rewind events
  rewind events --job nightly --since 7d
  rewind events --since "2026-11-22 00:00" --json
  rewind events --repo /srv/backup --password-file /etc/rewind/password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := event.Filter{Job: job, Host: host}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			repoGiven := g.rootFlags != nil && g.rootFlags.Lookup("repo") != nil && g.rootFlags.Lookup("repo").Changed
			return runEvents(cmd.Context(), g, planPath(config), repoGiven, f)
		},
	}
	addConfigFlag(cmd, &config)
	cmd.Flags().StringVar(&job, "job", "", "only the runs of `job`")
	cmd.Flags().StringVar(&host, "host", "", "only the runs of `hostname`")
	cmd.Flags().StringVar(&since, "since", "", "only runs started after `duration` ago or after a time")
	return cmd
}

// parseSince reads --since: a duration back from now ("24h", "7d") or a
// time as --at reads it.
func parseSince(s string, now time.Time) (time.Time, error) {
	if !strings.HasPrefix(s, "-") && s != "" && s[0] >= '0' && s[0] <= '9' {
		if m, err := timeline.ParseTime("-"+s, now); err == nil {
			return m.Time, nil
		}
	}
	m, err := timeline.ParseTime(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since: %w", err)
	}
	return m.Time, nil
}

func runEvents(ctx context.Context, g *globals, path string, repoGiven bool, f event.Filter) error {
	var all []event.Stored
	var failed []string
	list := func(name string, runList func() ([]event.Stored, []event.Unreadable, error)) {
		rs, bad, err := runList()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			return
		}
		for _, b := range bad {
			g.ui.Warnf("%s: events/%s cannot be read: %v\n", name, b.File, b.Err)
		}
		all = append(all, rs...)
	}
	if repoGiven {
		r, err := g.openRepo(ctx, false)
		if err != nil {
			return err
		}
		defer r.Close()
		list(g.repo, func() ([]event.Stored, []event.Unreadable, error) { return event.List(ctx, r, f) })
	} else {
		p, err := loadAgentPlan(path)
		if err != nil {
			return fmt.Errorf("%w\n(give --repo to read the events of one repository without a plan)", err)
		}
		for _, name := range slices.Sorted(maps.Keys(p.Repositories)) {
			pr := p.Repositories[name]
			if pr.Name == "" {
				pr.Name = name
			}
			list(name, func() ([]event.Stored, []event.Unreadable, error) {
				r, err := openPlanRepo(ctx, g, pr)
				if err != nil {
					return nil, nil, err
				}
				defer r.Close()
				return event.List(ctx, r, f)
			})
		}
	}
	event.Sort(all)
	if g.json {
		if all == nil {
			all = []event.Stored{}
		}
		if err := g.ui.JSONDoc(all); err != nil {
			return err
		}
	} else {
		printEvents(g, all)
	}
	if len(failed) > 0 {
		return withCode(ExitPartial, fmt.Errorf("events of some repositories could not be read:\n  %s", strings.Join(failed, "\n  ")))
	}
	return nil
}

func printEvents(g *globals, rs []event.Stored) {
	if len(rs) == 0 {
		g.ui.Infof("no events\n")
		return
	}
	t := ui.NewTable("STARTED", "JOB", "HOST", "TRIGGER", "RESULT", "DURATION", "FILES", "ADDED", "SNAPSHOT / ERROR").Right(5, 6, 7)
	for _, r := range rs {
		what := r.Snapshot
		if len(what) > 8 {
			what = what[:8]
		}
		if r.Error != "" {
			what = r.Error
		}
		trigger := r.Trigger
		if r.Action != "" {
			trigger += " " + r.Action
		}
		dur := ""
		if !r.End.IsZero() {
			dur = r.End.Sub(r.Start).Round(time.Second).String()
		}
		t.Row(r.Start.Local().Format("2006-01-02 15:04:05"), r.Job, r.Host, trigger, r.Result, dur,
			fmt.Sprint(r.Files), ui.Bytes(r.Added), what)
	}
	g.ui.Table(t)
}
