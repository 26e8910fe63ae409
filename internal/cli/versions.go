package cli

import (
	"context"
	"fmt"
	"strconv"
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
	g.ui.Printf("%s: %s in %s\n", h.describe(), ui.Count(int64(len(vs)), "version", "versions"), ui.Count(int64(len(h.sns)), "snapshot", "snapshots"))
	g.ui.Table(versionsTable(vs))
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

// versionsTable lays versions out one row each, oldest first, with a row
// for each label under the version in force at its time. Snapshots
// counts the snapshots a version lasted through and Last seen is the
// newest of them.
func versionsTable(vs []timeline.Version) *ui.Table {
	t := ui.NewTable("Time", "ID", "Change", "Type", "Size", "Snapshots", "Last seen", "Note").Right(4, 5)
	for i := range vs {
		v := &vs[i]
		typ, size, note := "absent", "", ""
		if v.Present() {
			typ = v.Node.Type.String()
			switch v.Node.Type {
			case tree.File:
				size = ui.Bytes(int64(v.Node.Size))
				if snapshot.NotBackedUp(v.Node) {
					note = "content not backed up: the backup could not read it"
				}
			case tree.Dir:
				size = ui.Count(int64(v.Entries), "entry", "entries")
			}
		}
		last := ""
		if v.Snapshots > 1 {
			last = v.Last.AsOf().Local().Format(timeFormat)
		}
		t.Row(v.First.AsOf().Local().Format(timeFormat), v.First.ID.Short(), string(v.Change), typ, size,
			strconv.Itoa(v.Snapshots), last, note)
		for _, l := range v.Labels {
			t.Row(l.Time.Local().Format(timeFormat), "", "label", "", "", "", "", strconv.Quote(l.Name)+noteSuffix(l))
		}
	}
	return t
}

// noteSuffix is ": NOTE" for a label with a note.
func noteSuffix(l label.Label) string {
	if l.Note == "" {
		return ""
	}
	return ": " + l.Note
}
