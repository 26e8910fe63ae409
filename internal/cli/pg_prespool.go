package cli

import (
	"context"

	"github.com/rewind-backup/rewind/internal/pg"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// defaultPrespool is --prespool's default: segments a restore spools
// before the server starts (64 × 16 MiB = 1 GiB in pg_wal at most).
const defaultPrespool = 64

// prespoolFlag registers --prespool.
func (o *pgRestoreOpts) prespoolFlag(f interface {
	IntVar(p *int, name string, value int, usage string)
}) {
	f.IntVar(&o.prespool, "prespool", defaultPrespool, "spool up to `count` WAL segments recovery needs before the server starts, in parallel with the restore (0: off)")
}

// prespoolState is one restore's pre-spool: its plan, and what it did.
type prespoolState struct {
	r                 *repository.Repository
	cluster           string
	plan              wal.PrespoolPlan
	segments, history int
	ran               bool
}

// PgPrespoolJSON is the "prespool" line of `pg restore --json`
// (docs/JSON.md).
type PgPrespoolJSON struct {
	MessageType    string `json:"message_type"`
	Segments       int    `json:"segments"`
	History        int    `json:"history"`
	Planned        int    `json:"planned"`
	Truncated      bool   `json:"truncated"`
	TargetTimeline uint32 `json:"target_timeline"`
	Error          string `json:"error,omitempty"`
}

// PgFetchesJSON is the "recovery_fetches" line of `pg restore --start
// --json` (docs/JSON.md): what restore_command did during recovery.
type PgFetchesJSON struct {
	MessageType string `json:"message_type"`
	pg.FetchCounts
	RepositoryOpens int `json:"repository_opens"`
}

// prespoolPlan works out the WAL recovery of sn will ask for (nil when
// --prespool is 0 or there is no archive recovery). Problems only warn:
// wal-fetch reads whatever is not spooled.
func (o *pgRestoreOpts) prespoolPlan(ctx context.Context, g *globals, r *repository.Repository, cl *wal.Cluster, sn *snapshot.Snapshot, tgt pg.Target, rc pg.Recovery) *prespoolState {
	if o.prespool <= 0 || cl == nil || rc.RestoreCommand == "" || sn.Postgres == nil {
		return nil
	}
	start, err := wal.ParseLSN(sn.Postgres.StartLSN)
	if err != nil {
		g.ui.Warnf("warning: no pre-spool: base backup %s: start LSN %q: %v\n", sn.ID.Short(), sn.Postgres.StartLSN, err)
		return nil
	}
	sw, err := wal.Switches(ctx, r, cl)
	if err != nil {
		g.ui.Warnf("warning: no pre-spool: %v\n", err)
		return nil
	}
	t := wal.PrespoolTarget{Timeline: rc.Timeline}
	switch tgt.Kind {
	case pg.TargetTime:
		t.Time = tgt.Time
	case pg.TargetLSN:
		t.LSN = tgt.LSN
	}
	ps := &prespoolState{r: r, cluster: cl.Name, plan: wal.PlanPrespool(cl, sw, sn.Postgres.Timeline, start, t, o.prespool)}
	g.log.Info("pre-spool plan", "segments", len(ps.plan.Segments), "history", len(ps.plan.History), "timeline", ps.plan.TargetTimeline, "truncated", ps.plan.Truncated)
	return ps
}

// fn is RestoreOptions.Prespool (nil: none).
func (ps *prespoolState) fn() func(context.Context, string) error {
	if ps == nil {
		return nil
	}
	return func(ctx context.Context, dir string) error {
		ps.ran = true
		var err error
		ps.segments, ps.history, err = wal.Prespool(ctx, ps.r, ps.cluster, ps.plan, dir, 4)
		return err
	}
}

// print says what the pre-spool did (a JSON line with json, when lines
// are the command's output), and records it in res.
func (ps *prespoolState) print(g *globals, res *pg.RestoreResult, jsonLines bool) {
	if ps == nil || !ps.ran {
		return
	}
	res.Prespooled = ps.segments
	if res.PrespoolErr != nil {
		g.ui.Warnf("warning: pre-spool: %v (wal-fetch reads what is missing from the repository)\n", res.PrespoolErr)
	}
	if g.json {
		if jsonLines {
			j := PgPrespoolJSON{MessageType: "prespool", Segments: ps.segments, History: ps.history, Planned: len(ps.plan.Segments),
				Truncated: ps.plan.Truncated, TargetTimeline: ps.plan.TargetTimeline}
			if res.PrespoolErr != nil {
				j.Error = res.PrespoolErr.Error()
			}
			g.ui.JSONLine(j)
		}
		return
	}
	if g.quiet {
		return
	}
	more := ""
	if ps.plan.Truncated {
		more = " (--prespool's limit: wal-fetch reads the rest)"
	}
	g.ui.Printf("pre-spooled %s and %s of timeline %d for recovery into pg_wal/%s%s\n",
		ui.Count(int64(ps.segments), "WAL segment", "WAL segments"), ui.Count(int64(ps.history), "history file", "history files"),
		ps.plan.TargetTimeline, wal.SpoolDirName, more)
}

// printFetches says what restore_command did during recovery.
func printFetches(g *globals, f pg.FetchCounts) {
	if g.json {
		g.ui.JSONLine(PgFetchesJSON{MessageType: "recovery_fetches", FetchCounts: f, RepositoryOpens: f.RepositoryOpens()})
		return
	}
	if g.quiet {
		return
	}
	g.ui.Printf("recovery: wal-fetch served %s from the spool and %s from the repository, answered %d \"not stored\" from the repository and %d from the pre-spool's history catalog (%s)\n",
		ui.Count(int64(f.Spool), "file", "files"), ui.Count(int64(f.Repository), "file", "files"), f.NotStored, f.NotStoredMarker,
		ui.Count(int64(f.RepositoryOpens()), "repository open", "repository opens"))
}
