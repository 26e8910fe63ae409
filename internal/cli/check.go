package cli

import (
	"fmt"

	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/spf13/cobra"
)

// CheckSummary is the JSON printed by `check --json`.
type CheckSummary struct {
	MessageType string `json:"message_type"`
	*checker.Result
	OK bool `json:"ok"`
}

func newCheckCmd(g *globals) *cobra.Command {
	var opt checker.Options
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure, and optionally all data",
		Long: `Check that the index agrees with every pack header, that every snapshot and
tree decodes, and that every blob they reference is stored. With --read-data
every pack is read in full and every blob decrypted and verified.

Exit status is 0 when nothing is wrong, 1 otherwise; every problem names the
damaged object.`,
		Example: `  rewind check
  rewind check --read-data --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := r.LoadIndex(ctx); err != nil {
				return fmt.Errorf("index: %w", err)
			}
			res, err := checker.Check(ctx, r, opt)
			if err != nil {
				return err
			}
			if g.json {
				g.ui.JSONLine(CheckSummary{MessageType: "summary", Result: res, OK: len(res.Problems) == 0})
			} else {
				for _, p := range res.Problems {
					g.ui.Printf("error: %s: %s\n", p.Object, p.Error)
				}
				for _, u := range res.Unindexed {
					g.ui.Printf("note: pack %s is not in any index (left by an interrupted backup)\n", u)
				}
				g.ui.Printf("checked %d packs, %d snapshots, %d trees, %d data blobs", res.Packs, res.Snapshots, res.Trees, res.DataBlobs)
				if opt.ReadData {
					g.ui.Printf(", read %d blobs", res.BlobsRead)
				}
				g.ui.Printf(": %d problems\n", len(res.Problems))
			}
			if len(res.Problems) > 0 {
				return withCode(ExitFatal, fmt.Errorf("the repository has %d problems", len(res.Problems)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opt.ReadData, "read-data", false, "read and verify every blob")
	return cmd
}
