package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// PruneBinlogJSON is what prune did to one source's binary log
// (docs/JSON.md, docs/MYSQL.md "The binary log").
type PruneBinlogJSON struct {
	Source string `json:"source"`
	// KeepFrom is the retention horizon: binlog files before it are
	// removed. Empty when no backup of the server is retained.
	KeepFrom string `json:"keep_from,omitempty"`
	// OldestBackup is the snapshot whose consistent point sets KeepFrom.
	OldestBackup string `json:"oldest_backup,omitempty"`
	// Removed names the binlog files whose pieces were removed.
	Removed []string `json:"removed"`
	// Merged counts the binlog index files merged into one.
	Merged int `json:"merged"`
	// Note says why nothing was removed, when so.
	Note string `json:"note,omitempty"`
}

// binlogRetention trims every source's binary log to what the retained
// MariaDB/MySQL backups need and merges its index files, before prune
// computes which blobs are in use (so it drops the blobs of the binlog
// removed). With dryRun it only reports. r is open and locked by prune.
func binlogRetention(ctx context.Context, r *repository.Repository, dryRun bool) ([]PruneBinlogJSON, error) {
	names, err := r.List(ctx, backend.BinlogFile)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	cat, err := binlog.Load(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return nil, fmt.Errorf("binlog index file binlog/%s cannot be read (%v), so which binary log is stored is unknown; prune changes nothing: run `rewind check`", u.File, u.Err)
	}
	var badSnap error
	snaps, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		if badSnap == nil {
			badSnap = fmt.Errorf("snapshot %s cannot be read (%v), and it may be a backup that needs the binary log; prune changes nothing: run `rewind check`", i.Short(), err)
		}
	})
	if err != nil {
		return nil, err
	}
	if badSnap != nil {
		return nil, badSnap
	}
	backups := binlog.Backups(snaps)
	host, _ := os.Hostname()
	var out []PruneBinlogJSON
	for _, s := range cat.Sources() {
		res := PruneBinlogJSON{Source: s.Name, Removed: []string{}}
		keep, oldest, ok := binlog.Horizon(s, backups)
		if ok {
			res.KeepFrom, res.OldestBackup = keep, oldest.Snapshot.String()
		} else {
			res.Note = "no backup of this server: all its binary log is kept"
			keep = ""
		}
		if keep == s.KeepFrom && len(s.IndexFiles) <= 1 {
			out = append(out, res)
			continue
		}
		rw, err := binlog.Trim(ctx, r, s.Name, keep, binlog.RewriteOptions{Host: host, DryRun: dryRun})
		if err != nil {
			return out, err
		}
		res.Merged, res.Removed = rw.Merged, append(res.Removed, rw.Expired...)
		out = append(out, res)
	}
	return out, nil
}

// printBinlogRetention prints what binlogRetention did.
func printBinlogRetention(g *globals, res []PruneBinlogJSON, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, s := range res {
		switch {
		case s.KeepFrom == "":
			g.ui.Printf("binary log of source %q: %s\n", s.Source, s.Note)
		default:
			g.ui.Printf("binary log of source %q: kept from %s (consistent point of backup %s); %s %s before it\n",
				s.Source, s.KeepFrom, s.OldestBackup[:8], verb, ui.Count(int64(len(s.Removed)), "binlog file", "binlog files"))
		}
	}
}
