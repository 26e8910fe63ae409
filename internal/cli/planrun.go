package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/job"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/ui"
)

func newPlanRunCmd(g *globals, po *planOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "run JOB",
		Short: "Run one job of the plan now, in the foreground",
		Long: `Run JOB now, as the agent would: its before steps, the backup (or check,
forget, copy), then its after steps, retention and copies, or the rollback
when something fails (docs/STEPS.md). The work runs as a child rewind
process; on a terminal its progress and messages are shown as it goes.
At the end the run's record is printed: result, snapshot, counts, and each
step's outcome in order; --json prints the record as one JSON document.

The run takes the job's lock in the agent's state folder, so it never
overlaps a run the agent started (exit 11 while that runs), and it is
recorded in the repository's event log like the agent's runs (rewind events).

Exit status: 0 on success, 3 when the snapshot was saved with some files
unreadable, 1 when the run failed, 11 when the job is running already.`,
		Example: `  rewind plan run nightly
  rewind plan run www --config ./rewind.yaml --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := po.load()
			if err != nil {
				return err
			}
			j, ok := p.Jobs[args[0]]
			if !ok {
				return fmt.Errorf("the plan %s has no job %q", po.config, args[0])
			}
			if j.Name == "" {
				j.Name = args[0]
			}
			// The agent's lock for the job: a plan run and a scheduled run
			// of the same job never overlap.
			store := agent.Store{Dir: agent.StateDirOf(p)}
			lock, err := agent.TryLock(store.LockPath(j.Name))
			if errors.Is(err, agent.ErrBusy) {
				return withCode(ExitLocked, fmt.Errorf("job %s is running now (by the agent or another plan run); see rewind status, or wait for it", j.Name))
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", j.Name, err)
			}
			defer lock.Close()
			r := &job.Runner{Plan: p, Log: g.log}
			if !g.json && !g.quiet && term.IsTerminal(int(os.Stderr.Fd())) {
				r.Stdout, r.Stderr = os.Stderr, os.Stderr
			}
			rec, runErr := r.Run(cmd.Context(), j, "manual")
			if rec.Host == "" {
				rec.Host = p.Host
			}
			rec.Attempt = max(rec.Attempt, 1)
			if err := saveRunEvent(cmd.Context(), g, p, j, rec); err != nil {
				g.log.Warn("the run was not recorded in the event log", "job", j.Name, "err", err)
			}
			if g.json {
				if err := g.ui.JSONDoc(rec); err != nil {
					return err
				}
			} else {
				printRun(g, rec)
			}
			switch {
			case runErr != nil:
				return withCode(ExitFatal, fmt.Errorf("job %s failed", rec.Job))
			case rec.Result == event.ResultWarning:
				return withCode(ExitPartial, fmt.Errorf("job %s: snapshot %s saved, but some files could not be read", rec.Job, rec.Snapshot))
			}
			return nil
		},
	}
}

// printRun prints a run's record as text.
func printRun(g *globals, rec *event.Run) {
	for _, s := range rec.Steps {
		arg := s.Arg
		if arg != "" {
			arg = " " + arg
		}
		g.ui.Printf("%-10s %-8s %s%s (%s)\n", s.Phase, s.Result, s.Kind, arg, s.Duration.Round(time.Millisecond))
		if s.Error != "" {
			g.ui.Printf("           %s\n", s.Error)
		}
	}
	g.ui.Printf("job %s: %s in %s\n", rec.Job, rec.Result, rec.End.Sub(rec.Start).Round(time.Millisecond))
	if rec.Snapshot != "" {
		g.ui.Printf("snapshot %s: %s, %s, %s added\n", rec.Snapshot[:min(8, len(rec.Snapshot))],
			ui.Count(rec.Files, "file", "files"), ui.Bytes(rec.Bytes), ui.Bytes(rec.Added))
	}
	if rec.Error != "" {
		g.ui.Printf("error: %s\n", rec.Error)
	}
}

// saveRunEvent records a run in its job's repository, as the agent does,
// and applies the event log's retention.
func saveRunEvent(ctx context.Context, g *globals, p *plan.Plan, j *plan.Job, rec *event.Run) error {
	pr := p.Repositories[j.Repository]
	if pr == nil {
		return fmt.Errorf("no repository %q in the plan", j.Repository)
	}
	r, err := openPlanRepo(ctx, g, pr)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := event.Save(ctx, r, rec); err != nil {
		return err
	}
	if _, err := event.Expire(ctx, r, rec.Host, rec.Job, time.Now()); err != nil {
		g.log.Warn("event retention", "job", rec.Job, "err", err)
	}
	refreshRunbookAfter(ctx, g, r, p, p.Path, j, rec)
	return nil
}
