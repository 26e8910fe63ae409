package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// MysqlCheckJSON is `mysql check --json` (docs/JSON.md).
type MysqlCheckJSON struct {
	OK      bool                   `json:"ok"`
	Sources []MysqlCheckSourceJSON `json:"sources"`
	// Problems are what made OK false, one line each.
	Problems []string `json:"problems"`
}

// MysqlCheckSourceJSON is one source of MysqlCheckJSON.
type MysqlCheckSourceJSON struct {
	Source   string `json:"source"`
	ServerID uint32 `json:"server_id"`
	// Horizon is the binlog file of the oldest retained backup's
	// consistent point: the binary log is needed from there.
	Horizon   string                 `json:"horizon,omitempty"`
	KeepFrom  string                 `json:"keep_from,omitempty"`
	Found     []MysqlBinlogSpanJSON  `json:"found"`
	Missing   []MysqlCheckGapJSON    `json:"missing"`
	GTIDHoles []MysqlCheckHoleJSON   `json:"gtid_holes"`
	Backups   []MysqlCheckBackupJSON `json:"backups"`
	// Read is how many pieces --read-data read back; Corrupt those
	// that failed.
	Read    int      `json:"read,omitempty"`
	Corrupt []string `json:"corrupt,omitempty"`
}

// MysqlCheckGapJSON is a gap, and whether a retained backup needs what
// it misses.
type MysqlCheckGapJSON struct {
	MysqlBinlogGapJSON
	Needed bool `json:"needed"`
}

// MysqlCheckHoleJSON is a jump in a GTID domain's sequence numbers.
type MysqlCheckHoleJSON struct {
	Domain uint32 `json:"domain"`
	After  string `json:"after"`
	Next   string `json:"next"`
}

// MysqlCheckBackupJSON is one retained backup's binary log.
type MysqlCheckBackupJSON struct {
	SnapshotID string `json:"snapshot_id"`
	BinlogFile string `json:"binlog_file"`
	BinlogPos  uint64 `json:"binlog_pos"`
	GTID       string `json:"gtid,omitempty"`
	Covered    bool   `json:"covered"`
	Why        string `json:"why,omitempty"`
}

func newMysqlCheckCmd(g *globals) *cobra.Command {
	var source string
	var readData bool
	cmd := &cobra.Command{
		Use:   "check [--source NAME] [--read-data]",
		Short: "Check that the stored binary log is continuous and serves every retained backup",
		Long: `Report, per source (server), the runs of contiguous binary log stored (FOUND)
and what is missing between them (MISSING): a hole inside a file, a file
not stored from its beginning, two files no rotation chains (the end of one
or whole files between them may be lost), and jumps in a GTID domain's
sequence numbers. For every retained backup (a snapshot made by mysql
backup) of the server it checks that the binary log is stored from the
backup's consistent point (its binlog file and position) on, without a gap.

It reads only the binlog index, unless --read-data: then every stored
piece is read back and checked against its content hash.

Exit status 1 when a retained backup's binary log is not covered, when a
gap or GTID jump lies after the oldest retained backup's consistent point
(or anywhere, when no backup of the server is retained), when --read-data
finds a piece that does not read back, or when the binlog index has
conflicts or unreadable files.`,
		Example: `  rewind mysql check
  rewind mysql check --source db1 --json
  rewind mysql check --read-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMysqlCheck(cmd.Context(), g, source, readData)
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "check only the binary log stored under this `name`")
	cmd.Flags().BoolVar(&readData, "read-data", false, "read every stored piece back and check its content hash")
	return cmd
}

func runMysqlCheck(ctx context.Context, g *globals, only string, readData bool) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "mysql check", true)
	if err != nil {
		return err
	}
	defer done()
	out := MysqlCheckJSON{Sources: []MysqlCheckSourceJSON{}, Problems: []string{}}
	problem := func(format string, a ...any) { out.Problems = append(out.Problems, fmt.Sprintf(format, a...)) }
	cat, err := binlog.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		problem("binlog index file binlog/%s cannot be read: %v", u.File, u.Err)
	}
	for _, c := range cat.Conflicts {
		problem("binlog/%s: %s", c.File, c.What)
	}
	snaps, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		problem("snapshot %s cannot be read, so whether it is a backup that needs the binary log is unknown: %v", i.Short(), err)
	})
	if err != nil {
		return err
	}
	backups := binlog.Backups(snaps)
	if only != "" && cat.Source(only) == nil {
		return fmt.Errorf("no binary log is stored under source %q", only)
	}
	covered := map[uint32]bool{}
	for _, s := range cat.Sources() {
		covered[s.ServerID] = true
		if only != "" && s.Name != only {
			continue
		}
		rep := binlog.Check(s, backups)
		sj := MysqlCheckSourceJSON{Source: s.Name, ServerID: s.ServerID, Horizon: rep.Horizon, KeepFrom: s.KeepFrom,
			Found: []MysqlBinlogSpanJSON{}, Missing: []MysqlCheckGapJSON{}, GTIDHoles: []MysqlCheckHoleJSON{}, Backups: []MysqlCheckBackupJSON{}}
		for _, sp := range rep.Spans {
			sj.Found = append(sj.Found, spanJSON(sp))
		}
		for i, gp := range rep.Gaps {
			sj.Missing = append(sj.Missing, MysqlCheckGapJSON{MysqlBinlogGapJSON: gapJSON(gp), Needed: rep.Needed[i]})
		}
		for _, h := range rep.Holes {
			sj.GTIDHoles = append(sj.GTIDHoles, MysqlCheckHoleJSON{Domain: h.Domain, After: h.After, Next: h.Next})
		}
		for _, b := range rep.Backups {
			sj.Backups = append(sj.Backups, MysqlCheckBackupJSON{SnapshotID: b.Backup.Snapshot.String(), BinlogFile: b.Backup.Pos.File,
				BinlogPos: b.Backup.Pos.Pos, GTID: b.Backup.GTID, Covered: b.Covered, Why: b.Why})
		}
		for _, p := range rep.Problems(s.Name) {
			problem("%s", p)
		}
		if readData {
			for _, p := range s.AllPieces() {
				sj.Read++
				if _, err := binlog.Read(ctx, r, &p.Piece); err != nil {
					sj.Corrupt = append(sj.Corrupt, fmt.Sprintf("%s [%d, %d)", p.Name, p.Start, p.End))
					problem("source %q: %v", s.Name, err)
				}
			}
		}
		out.Sources = append(out.Sources, sj)
	}
	// Backups of a server whose binary log is not stored here.
	for _, b := range backups {
		if !covered[b.ServerID] && only == "" {
			problem("backup %s of server_id %d (consistent point %s): no binary log of the server is stored, so it restores only to its own consistent point", b.Snapshot.Short(), b.ServerID, b.Pos)
		}
	}
	out.OK = len(out.Problems) == 0
	if g.json {
		if err := g.ui.JSONDoc(out); err != nil {
			return err
		}
	} else {
		printMysqlCheck(g, &out)
	}
	if !out.OK {
		return withCode(ExitFatal, fmt.Errorf("the stored binary log has %s", ui.Count(int64(len(out.Problems)), "problem", "problems")))
	}
	return nil
}

func printMysqlCheck(g *globals, out *MysqlCheckJSON) {
	if len(out.Sources) == 0 {
		g.ui.Printf("no binary log stored (rewind mysql binlog receive stores it)\n")
	}
	for _, s := range out.Sources {
		g.ui.Printf("source %q, server_id %d\n", s.Source, s.ServerID)
		if s.Horizon != "" {
			g.ui.Printf("  retention: binary log needed from %s (oldest retained backup)\n", s.Horizon)
		} else {
			g.ui.Printf("  retention: no backup of this server: all its binary log is kept\n")
		}
		for _, f := range s.Found {
			g.ui.Printf("  FOUND    %s %d .. %d (%s)\n", f.File, f.Start, f.End, ui.Count(int64(f.Transactions), "transaction", "transactions"))
		}
		for _, gp := range s.Missing {
			note := "before the oldest retained backup: not needed"
			if gp.Needed {
				note = "NEEDED: a restore cannot replay across it"
			}
			g.ui.Printf("  MISSING  %s (%s)\n", gp.What, note)
		}
		for _, h := range s.GTIDHoles {
			g.ui.Printf("  MISSING  GTID domain %d: %s .. %s\n", h.Domain, h.After, h.Next)
		}
		for _, b := range s.Backups {
			state := "covered"
			if !b.Covered {
				state = "NOT COVERED: " + b.Why
			}
			g.ui.Printf("  backup %s from %s:%d: %s\n", b.SnapshotID[:8], b.BinlogFile, b.BinlogPos, state)
		}
		for _, c := range s.Corrupt {
			g.ui.Printf("  CORRUPT  %s\n", c)
		}
	}
	for _, p := range out.Problems {
		g.ui.Printf("problem: %s\n", p)
	}
	if out.OK {
		g.ui.Printf("no problems found\n")
	}
}
