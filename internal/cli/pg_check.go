package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/rewind-backup/rewind/internal/ui"
	"strconv"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// PgCheckJSON is `pg check --json` (docs/JSON.md).
type PgCheckJSON struct {
	OK       bool               `json:"ok"`
	Clusters []PgCheckClusterJS `json:"clusters"`
	// Problems are what made OK false, one line each.
	Problems []string `json:"problems"`
}

// PgCheckClusterJS is one cluster in PgCheckJSON.
type PgCheckClusterJS struct {
	Name     string `json:"name"`
	SystemID string `json:"system_id"`
	// KeepFrom is the stored retention horizon (WAL before it expired).
	KeepFrom string `json:"keep_from,omitempty"`
	// Horizon is the start of the oldest base backup that is not a copy.
	Horizon string           `json:"horizon,omitempty"`
	Found   []WALRangeJSON   `json:"found"`
	Missing []PgCheckGapJSON `json:"missing"`
	Backups []PgCheckBackup  `json:"backups"`
	// Read is how many files --read-data read back; Corrupt those that
	// failed.
	Read    int      `json:"read,omitempty"`
	Corrupt []string `json:"corrupt,omitempty"`
}

// PgCheckGapJSON is a run of missing segments.
type PgCheckGapJSON struct {
	Timeline uint32 `json:"timeline"`
	First    string `json:"first"`
	Last     string `json:"last"`
	StartLSN string `json:"start_lsn"`
	EndLSN   string `json:"end_lsn"`
	Segments uint64 `json:"segments"`
	// Needed: after the oldest retained base backup's start, so a
	// problem.
	Needed bool `json:"needed"`
}

// PgCheckBackup is one retained base backup's WAL.
type PgCheckBackup struct {
	Snapshot   string   `json:"snapshot"`
	Copy       bool     `json:"copy,omitempty"`
	Timeline   uint32   `json:"timeline"`
	StartLSN   string   `json:"start_lsn"`
	StopLSN    string   `json:"stop_lsn"`
	Needed     int      `json:"needed"`
	InSnapshot int      `json:"in_snapshot"`
	Missing    []string `json:"missing"`
}

func newPgCheckCmd(g *globals) *cobra.Command {
	var cluster string
	var readData bool
	cmd := &cobra.Command{
		Use:   "check [--cluster NAME] [--read-data]",
		Short: "Check that the archived WAL serves every retained base backup",
		Long: `Report, per cluster name and timeline, the runs of consecutive WAL segments
stored (FOUND) and the runs missing between them (MISSING), and for every
retained base backup (a snapshot made by pg backup) whether the WAL from its
start to its stop is stored, in the archive or in the snapshot itself.

It reads only the WAL index, not the WAL, unless --read-data: then every
stored WAL file is read back and checked against its content hash.

Exit status 1 when a base backup lacks WAL from its start to its stop, when
a gap lies after the start of the oldest retained base backup (a
point-in-time restore cannot replay across it), when --read-data finds a
file that does not read back, or when the WAL index has conflicts or
unreadable files. Gaps before that start are reported and are not errors:
no retained backup needs that WAL.`,
		Example: `  rewind pg check
  rewind pg check --cluster main --json
  rewind pg check --read-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.pgAccess(runPgCheck(cmd.Context(), g, cluster, readData))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "check only the cluster stored under this `name`")
	cmd.Flags().BoolVar(&readData, "read-data", false, "read every stored WAL file back and check its content hash")
	return cmd
}

func runPgCheck(ctx context.Context, g *globals, only string, readData bool) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "pg check", true)
	if err != nil {
		return err
	}
	defer done()
	out := PgCheckJSON{Clusters: []PgCheckClusterJS{}, Problems: []string{}}
	problem := func(format string, a ...any) { out.Problems = append(out.Problems, fmt.Sprintf(format, a...)) }
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		problem("WAL index file wal/%s cannot be read: %v", u.File, u.Err)
	}
	for _, c := range cat.Conflicts {
		problem("wal/%s: %s", c.File, c.What)
	}
	snaps, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		problem("snapshot %s cannot be read, so whether it is a base backup that needs WAL is unknown: %v", i.Short(), err)
	})
	if err != nil {
		return err
	}
	backups, err := wal.BaseBackups(snaps)
	if err != nil {
		return err
	}
	if only != "" && cat.Cluster(only) == nil {
		return fmt.Errorf("no WAL of cluster %q is stored (clusters: %v)", only, cat.Names())
	}
	covered := map[uint64]bool{}
	for _, name := range cat.Names() {
		cl := cat.Cluster(name)
		covered[cl.SystemID] = true
		if only != "" && name != only {
			continue
		}
		rep := wal.Check(cl, backups)
		cj := PgCheckClusterJS{Name: name, SystemID: strconv.FormatUint(cl.SystemID, 10),
			Found: []WALRangeJSON{}, Missing: []PgCheckGapJSON{}, Backups: []PgCheckBackup{}}
		if cl.KeepFrom != 0 {
			cj.KeepFrom = cl.KeepFrom.String()
		}
		if rep.HasHorizon {
			cj.Horizon = rep.Horizon.String()
		}
		for _, rg := range rep.Ranges {
			cj.Found = append(cj.Found, WALRangeJSON{Timeline: rg.Timeline, First: rg.First, Last: rg.Last,
				StartLSN: rg.Start.String(), EndLSN: rg.End.String(), From: rg.From, To: rg.To, Segments: rg.Segments})
		}
		for _, gp := range rep.Gaps {
			cj.Missing = append(cj.Missing, PgCheckGapJSON{Timeline: gp.Timeline, First: gp.First, Last: gp.Last,
				StartLSN: gp.Start.String(), EndLSN: gp.End.String(), Segments: gp.Segments, Needed: gp.Needed})
			if gp.Needed {
				problem("cluster %q: timeline %d: %s .. %s missing, after the start of the oldest retained base backup (%s)", name, gp.Timeline, gp.First, gp.Last, rep.Horizon)
			}
		}
		for _, b := range rep.Backups {
			cj.Backups = append(cj.Backups, backupJSON(b))
			if len(b.Missing) > 0 {
				problem("cluster %q: base backup %s lacks WAL from its start to its stop: %v", name, b.Backup.Snapshot.Short(), b.Missing)
			}
		}
		if readData {
			for _, e := range cl.Entries() {
				cj.Read++
				if _, err := wal.Read(ctx, r, &e.Entry); err != nil {
					cj.Corrupt = append(cj.Corrupt, e.Name)
					problem("cluster %q: %v", name, err)
					if !errors.Is(err, wal.ErrCorrupt) {
						g.log.Debug("WAL read failed", "name", e.Name, "err", err)
					}
				}
			}
		}
		out.Clusters = append(out.Clusters, cj)
	}
	// Base backups of a cluster whose WAL is not archived here need their
	// own WAL files.
	for i := range backups {
		b := &backups[i]
		if covered[b.SystemID] || only != "" {
			continue
		}
		if n := wal.BackupNeeds(nil, b); len(n.Missing) > 0 {
			problem("base backup %s (system identifier %d, no WAL archived here) lacks WAL from its start to its stop: %v", b.Snapshot.Short(), b.SystemID, n.Missing)
		}
	}
	out.OK = len(out.Problems) == 0
	if g.json {
		g.ui.JSONDoc(out)
	} else {
		printPgCheck(g, &out)
	}
	if !out.OK {
		return withCode(ExitFatal, fmt.Errorf("the WAL archive has %s", ui.Count(int64(len(out.Problems)), "problem", "problems")))
	}
	return nil
}

func backupJSON(b wal.BackupWAL) PgCheckBackup {
	m := b.Missing
	if m == nil {
		m = []string{}
	}
	return PgCheckBackup{Snapshot: b.Backup.Snapshot.String(), Copy: b.Backup.Copy, Timeline: b.Backup.Timeline,
		StartLSN: b.Backup.Start.String(), StopLSN: b.Backup.Stop.String(), Needed: len(b.Needed), InSnapshot: b.InSnapshot, Missing: m}
}

func printPgCheck(g *globals, out *PgCheckJSON) {
	if len(out.Clusters) == 0 {
		g.ui.Printf("no WAL stored (rewind pg wal-push stores it, as archive_command)\n")
	}
	for _, c := range out.Clusters {
		g.ui.Printf("cluster %q, system identifier %s\n", c.Name, c.SystemID)
		if c.Horizon != "" {
			g.ui.Printf("  retention: WAL needed from %s (oldest retained base backup)\n", c.Horizon)
		} else {
			g.ui.Printf("  retention: no base backup (other than --copy ones): all WAL is kept\n")
		}
		for _, rg := range c.Found {
			g.ui.Printf("  FOUND    timeline %d: %s .. %s (%s to %s, %d segments)\n", rg.Timeline, rg.First, rg.Last, rg.StartLSN, rg.EndLSN, rg.Segments)
		}
		for _, gp := range c.Missing {
			note := "before the oldest retained base backup: not needed"
			if gp.Needed {
				note = "NEEDED: a restore cannot replay across it"
			}
			g.ui.Printf("  MISSING  timeline %d: %s .. %s (%s to %s, %d segments; %s)\n", gp.Timeline, gp.First, gp.Last, gp.StartLSN, gp.EndLSN, gp.Segments, note)
		}
		for _, b := range c.Backups {
			state := "WAL complete"
			if len(b.Missing) > 0 {
				state = fmt.Sprintf("MISSING %v", b.Missing)
			}
			kind := "base backup"
			if b.Copy {
				kind = "copy backup"
			}
			g.ui.Printf("  %s %s (timeline %d, %s .. %s): %d segments, %d in the snapshot: %s\n", kind, b.Snapshot[:8], b.Timeline, b.StartLSN, b.StopLSN, b.Needed, b.InSnapshot, state)
		}
		if c.Read > 0 {
			g.ui.Printf("  read back %d WAL files, %d failed\n", c.Read, len(c.Corrupt))
		}
	}
	for _, p := range out.Problems {
		g.ui.Printf("error: %s\n", p)
	}
	if out.OK {
		g.ui.Printf("no problems found\n")
	}
}
