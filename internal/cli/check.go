package cli

import (
	"fmt"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"os"
	"path/filepath"

	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// CheckSummary is the JSON printed by `check --json`.
type CheckSummary struct {
	MessageType string `json:"message_type"`
	*checker.Result
	OK      bool            `json:"ok"`
	Backend *backendSummary `json:"backend,omitempty"`
}

func newCheckCmd(g *globals) *cobra.Command {
	var opt checker.Options
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure, and optionally all data",
		Long: `Check that the index agrees with every pack header, that every snapshot and
tree decodes, and that every blob they reference is stored. With --read-data
every pack is read in full and every blob decrypted and verified.

--read-data-subset reads only some packs in full. N/M reads slice N of M
(1-based), a fixed partition by pack ID: running 1/M to M/M reads every pack
once. P% reads a rotating window of P percent of the packs, ordered by ID,
starting after the last pack the previous run read, so that ceil(100/P)
consecutive runs read every pack. The position is kept on this machine in
$XDG_CACHE_HOME/rewind/<repository id>/check-position (~/.cache when unset),
never in the repository; when it is missing or cannot be written, the window
starts at a random pack.

Exit status is 0 when nothing is wrong, 1 otherwise; every problem names the
damaged object.`,
		Example: `  rewind check
  rewind check --read-data --json
  rewind check --read-data-subset 10%
  rewind check --read-data-subset 2/7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if cmd.Flags().Changed("read-data-subset") {
				sub, err := checker.ParseSubset(subset)
				if err != nil {
					return fmt.Errorf("--read-data-subset: %w", err)
				}
				opt.Subset = &sub
			}
			r, done, err := g.openLocked(ctx, lock.Shared, "check", false)
			if err != nil {
				return err
			}
			defer done()
			// Snapshots first, then the index: a backup that finishes in
			// between cannot then look like a snapshot with missing data.
			opt.ListErrors = map[id.ID]error{}
			if opt.Snapshots, err = snapshot.List(ctx, r, func(i id.ID, err error) { opt.ListErrors[i] = err }); err != nil {
				return err
			}
			if opt.Snapshots == nil {
				opt.Snapshots = []*snapshot.Snapshot{}
			}
			adviseUnreadable(ctx, r, opt.ListErrors)
			if err := r.LoadIndex(ctx); err != nil {
				return fmt.Errorf("index: %w", err)
			}
			if opt.Subset != nil {
				if dir, err := os.UserCacheDir(); err == nil {
					opt.StateDir = filepath.Join(dir, "rewind", r.Config().ID.String())
				}
				opt.Warn = func(msg string) { g.ui.Warnf("warning: %s\n", msg) }
			}
			res, err := checker.Check(ctx, r, opt)
			if err != nil {
				return err
			}
			if g.json {
				g.ui.JSONLine(CheckSummary{MessageType: "summary", Result: res, OK: len(res.Problems) == 0, Backend: g.backendStats()})
			} else {
				for _, p := range res.Problems {
					g.ui.Printf("error: %s: %s\n", p.Object, p.Error)
				}
				for _, u := range res.Unindexed {
					g.ui.Printf("note: pack %s is not in any index (left by an interrupted backup)\n", u)
				}
				if res.Condemned > 0 {
					g.ui.Printf("note: %s condemned by prune and %s for deletion by a later prune\n", ui.Count(int64(res.Condemned), "pack is", "packs are"), ui.Verb(int64(res.Condemned), "waits", "wait"))
				}
				if len(res.Problems) > 0 {
					noteRepairedSnapshots(ctx, g, r)
				}
				g.ui.Printf("checked %s, %s, %s, %s", ui.Count(int64(res.Packs), "pack", "packs"), ui.Count(int64(res.Snapshots), "snapshot", "snapshots"),
					ui.Count(int64(res.Trees), "tree", "trees"), ui.Count(int64(res.DataBlobs), "data blob", "data blobs"))
				if res.WALFiles > 0 {
					g.ui.Printf(", %s", ui.Count(int64(res.WALFiles), "WAL file", "WAL files"))
				}
				if opt.Subset != nil {
					g.ui.Printf(", read %s (subset %s) with %s", ui.Count(int64(res.PacksRead), "pack", "packs"), res.Subset, ui.Count(int64(res.BlobsRead), "blob", "blobs"))
				} else if opt.ReadData {
					g.ui.Printf(", read %s", ui.Count(int64(res.BlobsRead), "blob", "blobs"))
				}
				g.ui.Printf(": %s\n", ui.Count(int64(len(res.Problems)), "problem", "problems"))
			}
			if len(res.Problems) > 0 {
				return withCode(ExitFatal, fmt.Errorf("the repository has %s", ui.Count(int64(len(res.Problems)), "problem", "problems")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opt.ReadData, "read-data", false, "read and verify every blob")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify only the packs of slice `N/M`, or a rotating P% of them")
	cmd.MarkFlagsMutuallyExclusive("read-data", "read-data-subset")
	return cmd
}
