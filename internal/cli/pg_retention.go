package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// PruneWALJSON is what prune did to one cluster's WAL (docs/JSON.md).
type PruneWALJSON struct {
	Cluster string `json:"cluster"`
	// KeepFrom is the retention horizon: WAL before it is removed. Empty
	// when the cluster has no base backup that is not a copy.
	KeepFrom string `json:"keep_from,omitempty"`
	// OldestBackup is the snapshot whose start LSN sets KeepFrom.
	OldestBackup string `json:"oldest_backup,omitempty"`
	// Removed names the WAL files whose index entries were removed.
	Removed []string `json:"removed"`
	// Merged counts the WAL index files merged into one.
	Merged int `json:"merged"`
	// Note says why nothing was removed, when so.
	Note string `json:"note,omitempty"`
}

// walRetention trims every cluster's WAL to what the retained base
// backups need and merges its index files, before prune computes which
// blobs are in use (so it drops the blobs of the WAL removed). With
// dryRun it only reports. r is open and locked by prune.
func walRetention(ctx context.Context, r *repository.Repository, dryRun bool) ([]PruneWALJSON, error) {
	names, err := r.List(ctx, backend.WALFile)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return nil, err
	}
	var out []PruneWALJSON
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return nil, fmt.Errorf("WAL index file wal/%s cannot be read (%v), so which WAL is stored is unknown; prune changes nothing: run `rewind check`", u.File, u.Err)
	}
	var badSnap error
	snaps, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		if badSnap == nil {
			badSnap = fmt.Errorf("snapshot %s cannot be read (%v), and it may be a base backup that needs WAL; prune changes nothing: run `rewind check`", i.Short(), err)
		}
	})
	if err != nil {
		return nil, err
	}
	if badSnap != nil {
		return nil, badSnap
	}
	backups, err := wal.BaseBackups(snaps)
	if err != nil {
		return nil, fmt.Errorf("%w; prune changes nothing", err)
	}
	host, _ := os.Hostname()
	for _, name := range cat.Names() {
		cl := cat.Cluster(name)
		res := PruneWALJSON{Cluster: name, Removed: []string{}}
		keep, oldest, ok := wal.Horizon(cl, backups)
		if ok {
			res.KeepFrom, res.OldestBackup = keep.String(), oldest.Snapshot.String()
		} else {
			res.Note = "no base backup of this cluster (other than --copy ones): all its WAL is kept"
			keep = 0
		}
		if keep <= cl.KeepFrom && len(cl.Files) <= 1 {
			out = append(out, res)
			continue
		}
		rw, err := wal.Trim(ctx, r, name, keep, wal.RewriteOptions{Host: host, DryRun: dryRun})
		if err != nil {
			return out, err
		}
		res.Merged = rw.Merged
		for _, e := range rw.Expired {
			res.Removed = append(res.Removed, e.Name)
		}
		out = append(out, res)
	}
	return out, nil
}

// printWALRetention prints what walRetention did.
func printWALRetention(g *globals, res []PruneWALJSON, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, c := range res {
		switch {
		case c.KeepFrom == "":
			g.ui.Printf("WAL of cluster %q: %s\n", c.Cluster, c.Note)
		default:
			g.ui.Printf("WAL of cluster %q: kept from %s (start of base backup %s); %s %d WAL files before it\n",
				c.Cluster, c.KeepFrom, c.OldestBackup[:8], verb, len(c.Removed))
		}
	}
}
