package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// VersionJSON is one element of `versions --json` (docs/JSON.md).
type VersionJSON struct {
	Time       time.Time   `json:"time"`
	LastSeen   time.Time   `json:"last_seen"`
	SnapshotID string      `json:"snapshot_id"`
	Snapshots  int         `json:"snapshots"`
	State      string      `json:"state"`
	Change     string      `json:"change"`
	Type       string      `json:"type,omitempty"`
	Size       *uint64     `json:"size,omitempty"`
	Entries    *int        `json:"entries,omitempty"`
	MTime      *time.Time  `json:"mtime,omitempty"`
	Labels     []LabelJSON `json:"labels,omitempty"`
}

func newVersionsCmd(g *globals) *cobra.Command {
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "versions PATH",
		Short: "List every version of a file or directory over time",
		Long: `List the distinct versions of PATH (a path on this machine) in the snapshots
of this host (or --host) that cover it, oldest first: when each appeared, the
first snapshot that holds it, its size (files) or number of entries
(directories), and what changed. Consecutive snapshots in which PATH did not
change are folded into one version; times when PATH did not exist show as
"absent". Labels (rewind mark) appear under the version in force at their
time.

Versions are told apart by the stored content IDs and directory trees, never
by reading file data. Access and change times do not count as changes;
mode, owner, modification time and extended attributes do ("metadata").
Restore a version with rewind restore --at TIME PATH, or put it back in
place with rewind rollback PATH --at TIME.`,
		Example: `  rewind versions /etc/nginx/nginx.conf
  rewind versions /srv/app --host web1
  rewind versions ~/notes.txt --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersions(cmd.Context(), g, args[0], sf)
		},
	}
	sf.add(cmd)
	return cmd
}

func runVersions(ctx context.Context, g *globals, arg string, sf snapFilter) error {
	p, err := localPath(arg)
	if err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "versions", true)
	if err != nil {
		return err
	}
	defer done()
	h, err := g.loadHistory(ctx, r, p, timelineFilter(sf))
	if err != nil {
		return err
	}
	if len(h.sns) == 0 {
		return fmt.Errorf("no snapshot holds %s (--host picks another host)", h.describe())
	}
	vs, err := timeline.Versions(ctx, r, h.sns, p, h.labels.Labels)
	if err != nil {
		return err
	}
	if g.json {
		out := make([]VersionJSON, 0, len(vs))
		for i := range vs {
			out = append(out, versionJSON(&vs[i]))
		}
		return g.ui.JSONDoc(out)
	}
	g.ui.Printf("%s: %d versions in %d snapshots\n", h.describe(), len(vs), len(h.sns))
	for i := range vs {
		v := &vs[i]
		what := "absent"
		if v.Present() {
			what = v.Node.Type.String()
			switch v.Node.Type {
			case tree.File:
				what += "  " + ui.Bytes(int64(v.Node.Size))
				if snapshot.NotBackedUp(v.Node) {
					what += "  (content not backed up: the backup could not read it)"
				}
			case tree.Dir:
				what += fmt.Sprintf("  %d entries", v.Entries)
			}
		}
		span := ""
		if v.Snapshots > 1 {
			span = fmt.Sprintf("  (%d snapshots, to %s)", v.Snapshots, v.Last.AsOf().Local().Format(timeFormat))
		}
		g.ui.Printf("  %s  %s  %-8s  %s%s\n", v.First.AsOf().Local().Format(timeFormat), v.First.ID.Short(), v.Change, what, span)
		for _, l := range v.Labels {
			g.ui.Printf("      label %q at %s%s\n", l.Name, l.Time.Local().Format(timeFormat), noteSuffix(l))
		}
	}
	return nil
}

func versionJSON(v *timeline.Version) VersionJSON {
	j := VersionJSON{
		Time: v.First.AsOf().UTC(), LastSeen: v.Last.AsOf().UTC(), SnapshotID: v.First.ID.String(),
		Snapshots: v.Snapshots, State: "absent", Change: string(v.Change),
	}
	if n := v.Node; n != nil {
		j.State, j.Type = "present", n.Type.String()
		if snapshot.NotBackedUp(n) {
			j.State = "not-backed-up"
		}
		mt := time.Unix(0, n.MTime).UTC()
		j.MTime = &mt
		switch n.Type {
		case tree.File:
			size := n.Size
			j.Size = &size
		case tree.Dir:
			entries := v.Entries
			j.Entries = &entries
		}
	}
	for _, l := range v.Labels {
		j.Labels = append(j.Labels, labelJSON(l))
	}
	return j
}

// noteSuffix is ": NOTE" for a label with a note.
func noteSuffix(l label.Label) string {
	if l.Note == "" {
		return ""
	}
	return ": " + l.Note
}
