package cli

import (
	"strings"

	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// SnapshotJSON is one entry of `snapshots --json` (docs/JSON.md).
type SnapshotJSON struct {
	*snapshot.Snapshot
	ID      string `json:"id"`
	ShortID string `json:"short_id"`
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Example: `  rewind snapshots
  rewind snapshots --host web1 --tag nightly
  rewind snapshots --json | jq '.[].summary.data_added'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			sns, err := g.listSnapshots(ctx, r)
			if err != nil {
				return err
			}
			f := sf.filter()
			out := []SnapshotJSON{}
			for _, sn := range sns {
				if f.Match(sn) {
					out = append(out, SnapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Short()})
				}
			}
			if g.json {
				return g.ui.JSONDoc(out)
			}
			g.ui.Printf("%-8s  %-19s  %-15s  %-20s  %s\n", "ID", "Time", "Host", "Tags", "Paths")
			g.ui.Printf("%s\n", strings.Repeat("-", 80))
			for _, s := range out {
				g.ui.Printf("%-8s  %-19s  %-15s  %-20s  %s\n", s.ShortID, s.Time.Local().Format("2006-01-02 15:04:05"),
					s.Hostname, strings.Join(s.Tags, ","), strings.Join(s.Paths, " "))
			}
			g.ui.Printf("%d snapshots\n", len(out))
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}
