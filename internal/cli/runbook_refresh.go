package cli

import (
	"context"
	"errors"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/password"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/runbook"
)

// refreshRunbookAfter writes the runbook of run's host again after a run
// that changes its facts (a files backup that saved a snapshot, a drill,
// a recover), as the agent and `plan run` record runs; the runbook is
// stored only when its content changed. A host without an inventory is
// skipped, and a failure is only logged: the run's own result stands.
func refreshRunbookAfter(ctx context.Context, g *globals, r *repository.Repository, p *plan.Plan, planPath string, j *plan.Job, run *event.Run) {
	switch {
	case run.Kind == plan.KindFiles && run.Result != event.ResultFailed && run.Snapshot != "":
	case run.Kind == "drill" || run.Kind == "recover":
	default:
		return
	}
	in, _, err := runbook.Gather(ctx, r, run.Host, "")
	if errors.Is(err, inventory.ErrNone) {
		return
	}
	if err != nil {
		g.log.Warn("runbook", "host", run.Host, "err", err)
		return
	}
	in.Plan, in.PlanPath = p, planPath
	if pr := p.Repositories[j.Repository]; pr != nil {
		if loc, err := location.Parse(pr.Location); err == nil {
			in.Repository = loc.String()
		}
		switch {
		case pr.PasswordFile != "":
			in.PasswordFrom = "--password-file " + pr.PasswordFile
		case pr.PasswordCommand != "":
			in.PasswordFrom = "--password-command " + pr.PasswordCommand
		default:
			if s, ok, err := password.Choose(g.passwordSettings()...); err == nil && ok {
				in.PasswordFrom = s.String()
			}
		}
	}
	release, err := g.lockRepo(ctx, r, lock.Shared, "runbook")
	if err != nil {
		g.log.Warn("runbook", "host", run.Host, "err", err)
		return
	}
	defer release()
	w, err := runbook.Refresh(ctx, r, in, time.Now(), false)
	if err != nil {
		g.log.Warn("runbook", "host", run.Host, "err", err)
		return
	}
	if w.New {
		g.log.Info("runbook stored", "host", run.Host, "file", w.File.Short())
	}
}
