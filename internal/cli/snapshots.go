package cli

import (
	"strings"

	"github.com/rewind-backup/rewind/internal/hold"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// SnapshotJSON is one entry of `snapshots --json` (docs/JSON.md).
type SnapshotJSON struct {
	*snapshot.Snapshot
	ID      string `json:"id"`
	ShortID string `json:"short_id"`
	// Protected is true while the snapshot is under legal hold.
	Protected bool `json:"protected,omitempty"`
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots",
		Long: `List snapshots, oldest first: short ID, time, host, tags and paths. A "*"
after the ID marks a snapshot under legal hold (rewind protect).`,
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
			holds, err := hold.List(ctx, r)
			if err != nil {
				return err
			}
			warnUnreadableHolds(g, holds)
			f := sf.filter()
			out := []SnapshotJSON{}
			protected := 0
			for _, sn := range sns {
				if f.Match(sn) {
					j := SnapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Short(), Protected: holds.Protected(sn.ID)}
					if j.Protected {
						protected++
					}
					out = append(out, j)
				}
			}
			if g.json {
				return g.ui.JSONDoc(out)
			}
			// A protected snapshot has a "*" right after its ID.
			t := ui.NewTable("ID", "Time", "Host", "Tags", "Paths")
			for _, s := range out {
				mark := ""
				if s.Protected {
					mark = "*"
				}
				paths := strings.Join(s.Paths, " ")
				if s.Image != nil {
					// A device or image: one path, and its size.
					paths += " (" + ui.Bytes(s.Image.Size) + ")"
				}
				t.Row(s.ShortID+mark, s.Time.Local().Format(timeFormat), s.Hostname, strings.Join(s.Tags, ","), paths)
			}
			g.ui.Table(t)
			if protected > 0 {
				g.ui.Printf("%s, %d protected (* legal hold: forget keeps them until rewind unprotect)\n", ui.Count(int64(len(out)), "snapshot", "snapshots"), protected)
			} else {
				g.ui.Printf("%s\n", ui.Count(int64(len(out)), "snapshot", "snapshots"))
			}
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}
