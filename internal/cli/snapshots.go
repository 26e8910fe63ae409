package cli

import (
	"context"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/drill"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/repository"

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
	// VerifiedByDrill is the end of the newest successful drill of the
	// snapshot (rewind drill), which proved it recovers.
	VerifiedByDrill *time.Time `json:"verified_by_drill,omitempty"`
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
			verified := drillVerified(ctx, g, r)
			f := sf.filter()
			out := []SnapshotJSON{}
			protected := 0
			for _, sn := range sns {
				if f.Match(sn) {
					j := SnapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Short(), Protected: holds.Protected(sn.ID)}
					if t, ok := verified[j.ID]; ok {
						j.VerifiedByDrill = &t
					}
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
			drilled := false
			for _, s := range out {
				drilled = drilled || s.VerifiedByDrill != nil
			}
			cols := []string{"ID", "Time", "Host", "Tags", "Paths"}
			if drilled {
				// Only when a drill verified one: the usual listing stays as it was.
				cols = append(cols, "Verified by drill")
			}
			t := ui.NewTable(cols...)
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
				row := []string{s.ShortID + mark, s.Time.Local().Format(timeFormat), s.Hostname, strings.Join(s.Tags, ","), paths}
				if drilled {
					v := ""
					if s.VerifiedByDrill != nil {
						v = s.VerifiedByDrill.Local().Format(timeFormat)
					}
					row = append(row, v)
				}
				t.Row(row...)
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

// drillVerified maps snapshot IDs to their newest successful drill, from
// one listing of the event log; a log that cannot be read only warns.
func drillVerified(ctx context.Context, g *globals, r *repository.Repository) map[string]time.Time {
	rs, _, err := event.List(ctx, r, event.Filter{})
	if err != nil {
		g.ui.Warnf("warning: the event log cannot be read, drills are not shown: %v\n", err)
		return nil
	}
	return drill.Verified(rs)
}
