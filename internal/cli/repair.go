package cli

import (
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// RepairIndexSummary is the JSON printed by `repair index --json`.
type RepairIndexSummary struct {
	MessageType       string   `json:"message_type"`
	PacksIndexed      int      `json:"packs_indexed"`
	IndexFilesRemoved int      `json:"index_files_removed"`
	UnreadablePacks   []string `json:"unreadable_packs,omitempty"`
}

func newRepairCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Repair a damaged repository",
		Long:  `Repair parts of a repository from what is still intact.`,
		Example: `  rewind repair index
  rewind repair index --json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRepairIndexCmd(g), newRepairSnapshotsCmd(g))
	return cmd
}

func newRepairIndexCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the pack headers",
		Long: `Read the header of every pack and write one new index file listing every
pack whose header is intact, then remove the index files it replaces. The
new index is stored before anything is removed. Packs whose header cannot
be read are named and left in place; their blobs are missing from the
index afterwards, which check reports. Pack data is never deleted.`,
		Example: `  rewind repair index
  rewind repair index --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, done, err := g.openLocked(ctx, lock.Exclusive, "repair index", false)
			if err != nil {
				return err
			}
			defer done()
			res, err := r.RebuildIndex(ctx)
			if err != nil {
				return err
			}
			sum := RepairIndexSummary{MessageType: "summary", PacksIndexed: res.PacksIndexed, IndexFilesRemoved: res.IndexFilesRemoved}
			for _, p := range res.Skipped {
				sum.UnreadablePacks = append(sum.UnreadablePacks, p.Pack.String())
				if !g.json {
					g.ui.Warnf("warning: pack %s left out of the index: %v\n", p.Pack, p.Err)
				}
			}
			if g.json {
				g.ui.JSONLine(sum)
			} else {
				g.ui.Printf("indexed %s in a new index file, removed %s\n", ui.Count(int64(sum.PacksIndexed), "pack", "packs"),
					ui.Count(int64(sum.IndexFilesRemoved), "old index file", "old index files"))
			}
			return nil
		},
	}
}
